package controlplane

import (
	"fmt"
	"os"

	"kite/internal/controller/deployment"
	"kite/internal/controller/endpoints"
	"kite/internal/controller/endpointslice"
	"kite/internal/controller/endpointslicemirroring"
	"kite/internal/controller/garbagecollector"
	"kite/internal/controller/lbipam"
	"kite/internal/controller/namespace"
	"kite/internal/controller/nodeipam"
	"kite/internal/controller/nodelifecycle"
	"kite/internal/controller/replicaset"
	"kite/internal/controller/rootcacertpublisher"
	"kite/internal/controller/serviceaccount"
	"kite/internal/scheduler"
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
	{"node-ipam-controller", func(cc *controllerContext) (runner, error) {
		return nodeipam.New(nodeipam.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("cidrAllocator"),
			ClusterCIDR: cc.cfg.API.ClusterCIDR, ServiceCIDR: cc.cfg.API.ServiceCIDR, NodeMaskSizeIPv4: cc.cfg.NodeCIDRMaskSize})
	}},
	{"node-lifecycle-controller", func(cc *controllerContext) (runner, error) {
		secs := int64(cc.cfg.PodEvictionTimeout.Seconds())
		return nodelifecycle.New(nodelifecycle.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("node-controller"),
			GracePeriod: cc.cfg.NodeMonitorGracePeriod, NotReadyTolerationSeconds: secs, UnreachableTolerationSeconds: secs})
	}},
	{"deployment-controller", func(cc *controllerContext) (runner, error) {
		return deployment.New(deployment.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder(deployment.Name)})
	}},
	{"replicaset-controller", func(cc *controllerContext) (runner, error) {
		return replicaset.New(replicaset.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder(replicaset.Name)})
	}},
	{"endpointslice-controller", func(cc *controllerContext) (runner, error) {
		return endpointslice.New(endpointslice.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("endpoint-slice-controller")})
	}},
	{"endpoints-controller", func(cc *controllerContext) (runner, error) {
		return endpoints.New(endpoints.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("endpoint-controller")})
	}},
	{"endpointslice-mirroring-controller", func(cc *controllerContext) (runner, error) {
		return endpointslicemirroring.New(endpointslicemirroring.Config{Client: cc.client, Informers: cc.informers,
			Recorder: cc.recorder("endpoint-slice-mirroring-controller")})
	}},
	{"garbage-collector", func(cc *controllerContext) (runner, error) {
		return garbagecollector.New(garbagecollector.Config{Client: cc.client, Metadata: cc.metadata, Recorder: cc.recorder("garbage-collector-controller")})
	}},
	{"serviceaccount-controller", func(cc *controllerContext) (runner, error) {
		return serviceaccount.New(serviceaccount.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("service-account-controller")})
	}},
	{"root-ca-cert-publisher", func(cc *controllerContext) (runner, error) {
		ca, err := os.ReadFile(cc.cfg.API.CAFile())
		if err != nil {
			return nil, fmt.Errorf("cluster CA: %w", err)
		}
		return rootcacertpublisher.New(rootcacertpublisher.Config{Client: cc.client, Informers: cc.informers, RootCA: ca})
	}},
	{"lbipam-controller", func(cc *controllerContext) (runner, error) {
		if cc.cfg.LBPool == "" {
			return nil, nil
		}
		return lbipam.New(lbipam.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder(lbipam.Name), Pool: cc.cfg.LBPool})
	}},
	{"dns-addon", func(cc *controllerContext) (runner, error) {
		if !cc.cfg.ClusterDNS {
			return nil, nil
		}
		return newDNSAddon(cc.client, cc.cfg.API.ServiceCIDR, cc.cfg.ClusterDomain)
	}},
	{"scheduler", func(cc *controllerContext) (runner, error) {
		return scheduler.New(scheduler.Config{Client: cc.client, Informers: cc.informers, Recorder: cc.recorder("default-scheduler")})
	}},
}
