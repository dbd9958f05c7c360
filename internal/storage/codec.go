package storage

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// protoCodec stores objects in Kubernetes' protobuf envelope, as upstream
// does in etcd.
type protoCodec struct {
	scheme *runtime.Scheme
	ser    *protobuf.Serializer
}

// NewCodec returns the storage codec for the types in scheme.
func NewCodec(scheme *runtime.Scheme) Codec {
	return &protoCodec{scheme: scheme, ser: protobuf.NewSerializer(scheme, scheme)}
}

func (c *protoCodec) Encode(obj runtime.Object) ([]byte, error) {
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	var buf bytes.Buffer
	if err := c.ser.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", gvks[0].Kind, err)
	}
	return buf.Bytes(), nil
}

func (c *protoCodec) Decode(data []byte, into runtime.Object) error {
	_, _, err := c.ser.Decode(data, nil, into)
	return err
}
