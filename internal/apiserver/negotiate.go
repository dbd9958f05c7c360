package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// target is what a response is encoded as: the serializer for the media
// type, and the transformation asked with "as=" (Table,
// PartialObjectMetadata, PartialObjectMetadataList) in group g, version v.
type target struct {
	info    runtime.SerializerInfo
	as      string
	version string // meta.k8s.io version of the transformation: v1 or v1beta1
	pretty  bool
}

// negotiate picks the first acceptable entry of the Accept header.
// Transformations are only offered where allowTransform (resource GETs).
func (s *Server) negotiate(r *http.Request, allowTransform bool) (target, error) {
	accept := r.Header.Get("Accept")
	pretty := r.URL.Query().Get("pretty") == "true" || r.URL.Query().Get("pretty") == "1"
	if accept == "" {
		return target{info: s.jsonInfo(), pretty: pretty}, nil
	}
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		info, ok := s.serializerFor(mt)
		if !ok {
			continue
		}
		t := target{info: info, pretty: pretty}
		if as := params["as"]; as != "" {
			if !allowTransform || params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			switch as {
			case "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
			default:
				continue
			}
			t.as, t.version = as, params["v"]
		}
		return t, nil
	}
	return target{}, fmt.Errorf("only the following media types are accepted: %s", strings.Join(s.mediaTypes(), ", "))
}

func (s *Server) serializerFor(mt string) (runtime.SerializerInfo, bool) {
	switch mt {
	case "*/*", "application/*", "application/json":
		return s.jsonInfo(), true
	}
	for _, info := range s.codecs.SupportedMediaTypes() {
		if info.MediaType == mt {
			return info, true
		}
	}
	return runtime.SerializerInfo{}, false
}

func (s *Server) jsonInfo() runtime.SerializerInfo {
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	return info
}

func (s *Server) mediaTypes() []string {
	var out []string
	for _, info := range s.codecs.SupportedMediaTypes() {
		out = append(out, info.MediaType)
	}
	return out
}

// withKind sets apiVersion and kind on obj, as the wire form needs them.
func (s *Server) withKind(obj runtime.Object) runtime.Object {
	if obj.GetObjectKind().GroupVersionKind().Kind != "" {
		return obj
	}
	if gvks, _, err := s.scheme.ObjectKinds(obj); err == nil {
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	}
	return obj
}

// write encodes obj with the negotiated serializer.
func (s *Server) write(w http.ResponseWriter, code int, t target, obj runtime.Object) {
	ser := t.info.Serializer
	if t.pretty && t.info.PrettySerializer != nil {
		ser = t.info.PrettySerializer
	}
	w.Header().Set("Content-Type", t.info.MediaType)
	w.WriteHeader(code)
	if err := ser.Encode(s.withKind(obj), w); err != nil {
		// Headers are gone; all we can do is note it.
		s.log.Error(err, "encode response", "kind", obj.GetObjectKind().GroupVersionKind().Kind)
	}
}
