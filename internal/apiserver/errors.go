package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kite/internal/storage"
)

// apiError maps storage errors about one object to Kubernetes Status
// errors; errors that already are API errors pass through.
func apiError(err error, gr schema.GroupResource, name string) error {
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &status):
		return err
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMsg))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %v", err))
	case errors.Is(err, storage.ErrBadContinue):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, storage.ErrFuture):
		return apierrors.NewTimeoutError("Too large resource version", 1)
	}
	return apierrors.NewInternalError(err)
}

const conflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

// writeError answers with a Status; the response is JSON unless the client
// negotiated another encoding.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
		st.Code = int32(code)
	}
	if code >= 500 {
		s.log.Error(err, "request failed", "method", r.Method, "path", r.URL.Path)
	}
	t, nerr := s.negotiate(r, false)
	if nerr != nil {
		t = target{info: s.jsonInfo()}
	}
	s.write(w, code, t, &st)
}

func notAcceptable(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotAcceptable,
		Reason: metav1.StatusReasonNotAcceptable, Message: msg}}
}

func unsupportedMediaType(contentType string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType, Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", contentType)}}
}
