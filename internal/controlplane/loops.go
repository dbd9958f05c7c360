package controlplane

import (
	"kite/internal/controller/namespace"
)

// loop is one control loop the leader runs.
type loop struct {
	name  string
	build func(cc *controllerContext) (runner, error)
}

// loops lists every control loop, in start order.
var loops = []loop{
	{"namespace-controller", func(cc *controllerContext) (runner, error) {
		return namespace.New(namespace.Config{Client: cc.client, Dynamic: cc.dynamic, Namespaces: cc.informers.Core().V1().Namespaces()})
	}},
}
