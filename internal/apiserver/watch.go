package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"kite/internal/storage"
)

func storageListAll(match func(runtime.Object) bool) storage.ListOptions {
	return storage.ListOptions{Match: match}
}

// watch streams changes as WatchEvents. Without a resourceVersion (or with
// "0") it first sends the current objects as ADDED; with sendInitialEvents
// it ends them with a bookmark annotated k8s.io/initial-events-end.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	t, err := s.negotiate(r, true)
	if err != nil {
		s.writeError(w, r, notAcceptable(err.Error()))
		return
	}
	if t.info.StreamSerializer == nil {
		s.writeError(w, r, notAcceptable(fmt.Sprintf("%s does not support streaming", t.info.MediaType)))
		return
	}
	var opts metav1.ListOptions
	if err := s.params(r, &opts); err != nil {
		s.writeError(w, r, err)
		return
	}
	fieldSel := opts.FieldSelector
	if info.name != "" {
		// /watch/.../NAME watches one object.
		fieldSel = fields.AndSelectors(fields.OneTermEqualSelector("metadata.name", info.name), fields.Everything()).String()
		if opts.FieldSelector != "" {
			fieldSel += "," + opts.FieldSelector
		}
	}
	sel, err := s.selection(info, opts.LabelSelector, fieldSel)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	initial := rv == 0
	if opts.SendInitialEvents != nil {
		if *opts.SendInitialEvents && opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan {
			s.writeError(w, r, apierrors.NewInvalid(info.res.gvk().GroupKind(), "", fieldErrs("resourceVersionMatch", opts.ResourceVersionMatch,
				"sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")))
			return
		}
		initial = *opts.SendInitialEvents
	}
	timeout := time.Duration(30+rand.IntN(30)) * time.Minute
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	match := s.match(info.res, sel)
	var initialObjs []runtime.Object
	if initial {
		res, err := s.store.List(ctx, info.res.prefix(info.namespace), info.res.newObj, storage.ListOptions{Match: match})
		if err != nil {
			s.writeError(w, r, apiError(err, info.res.groupResource(), ""))
			return
		}
		initialObjs, rv = res.Items, res.Revision
	}
	events := s.store.Watch(ctx, info.res.prefix(info.namespace), rv, info.res.newObj, match)

	enc := newWatchEncoder(s, w, t, info.res, r.URL.Query().Get("includeObject"))
	w.Header().Set("Content-Type", t.info.MediaType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	enc.flush()
	for _, o := range initialObjs {
		if err := enc.send(watch.Added, o); err != nil {
			return
		}
	}
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		if err := enc.bookmark(rv, true); err != nil {
			return
		}
	}
	// Bookmarks tell the client how far it has seen: etcd's progress
	// notifications move them on while nothing changes; a ticker repeats
	// the last one in case etcd's are late.
	bookmarks := opts.AllowWatchBookmarks && t.as == ""
	ticker := time.NewTicker(s.bookmarkInterval)
	defer ticker.Stop()
	lastRev := rv
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if bookmarks {
				if err := enc.bookmark(lastRev, false); err != nil {
					return
				}
			}
		case e, ok := <-events:
			if !ok {
				return
			}
			if e.Revision > lastRev {
				lastRev = e.Revision
			}
			switch e.Type {
			case watch.Bookmark:
				if bookmarks {
					if err := enc.bookmark(e.Revision, false); err != nil {
						return
					}
				}
			case watch.Error:
				status := apiError(e.Err, info.res.groupResource(), "").(apierrors.APIStatus).Status()
				if errors.Is(e.Err, storage.ErrCompacted) {
					status = apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", rv)).Status()
				}
				_ = enc.sendStatus(&status)
				return
			default:
				if err := enc.send(e.Type, e.Object); err != nil {
					return
				}
			}
		}
	}
}

func fieldErrs(path string, value interface{}, msg string) field.ErrorList {
	return field.ErrorList{field.Invalid(field.NewPath(path), value, msg)}
}

// watchEncoder writes framed WatchEvents with the negotiated serializer.
type watchEncoder struct {
	s             *Server
	w             http.ResponseWriter
	t             target
	res           *resource
	includeObject string
	stream        streaming.Encoder
	flusher       http.Flusher
}

func newWatchEncoder(s *Server, w http.ResponseWriter, t target, res *resource, includeObject string) *watchEncoder {
	fw := t.info.StreamSerializer.Framer.NewFrameWriter(w)
	e := &watchEncoder{s: s, w: w, t: t, res: res, includeObject: includeObject,
		stream: streaming.NewEncoder(fw, t.info.StreamSerializer.Serializer)}
	e.flusher, _ = w.(http.Flusher)
	return e
}

func (e *watchEncoder) flush() {
	if e.flusher != nil {
		e.flusher.Flush()
	}
}

func (e *watchEncoder) encodeObject(obj runtime.Object) ([]byte, error) {
	switch e.t.as {
	case "Table":
		table, err := e.s.toTable(e.res.groupResource(), []runtime.Object{e.s.withKind(obj)}, e.includeObject, time.Now())
		if err != nil {
			return nil, err
		}
		table.ResourceVersion = objectMeta(obj).GetResourceVersion()
		obj = e.s.tableKind(table, e.t)
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		p := e.s.partial(obj, e.t)
		p.Kind = "PartialObjectMetadata"
		obj = p
	}
	return runtime.Encode(e.t.info.Serializer, e.s.withKind(obj))
}

func (e *watchEncoder) send(t watch.EventType, obj runtime.Object) error {
	raw, err := e.encodeObject(obj)
	if err != nil {
		return err
	}
	return e.write(t, raw)
}

func (e *watchEncoder) write(t watch.EventType, raw []byte) error {
	if err := e.stream.Encode(&metav1.WatchEvent{Type: string(t), Object: runtime.RawExtension{Raw: raw}}); err != nil {
		return err
	}
	e.flush()
	return nil
}

// bookmark sends an object of the watched kind that carries only a
// resourceVersion (and, after the initial events, the end marker).
func (e *watchEncoder) bookmark(rev int64, initialEnd bool) error {
	obj := e.res.newObj()
	m := objectMeta(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	raw, err := runtime.Encode(e.t.info.Serializer, e.s.withKind(obj))
	if err != nil {
		return err
	}
	return e.write(watch.Bookmark, raw)
}

func (e *watchEncoder) sendStatus(st *metav1.Status) error {
	st.Kind, st.APIVersion = "Status", "v1"
	raw, err := runtime.Encode(e.t.info.Serializer, st)
	if err != nil {
		return err
	}
	return e.write(watch.Error, raw)
}
