package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kite/internal/apiserver/defaults"
	"kite/internal/apiserver/validation"
	"kite/internal/storage"
)

// maxGeneratedNameBase: generateName is cut so that with its five random
// characters a name fits 63.
const maxGeneratedNameBase = 63 - 5

// maxBody caps request bodies, as upstream does (3 MiB).
const maxBody = 3 << 20

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading request body: %v", err))
	}
	if len(body) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBody))
	}
	return body, nil
}

// decodeOptions say how to decode a body.
type decodeOptions struct {
	contentType     string
	fieldValidation string // Strict, Warn (default) or Ignore
}

// decode reads an object of res's kind from body. Unknown and duplicate
// fields fail the request under Strict, come back as warnings under Warn,
// and are dropped silently under Ignore.
func (s *Server) decode(res *resource, body []byte, opts decodeOptions) (runtime.Object, []string, error) {
	mt := opts.contentType
	if mt == "" {
		mt = runtime.ContentTypeJSON
	}
	if parsed, _, err := mime.ParseMediaType(mt); err == nil {
		mt = parsed
	}
	info, ok := s.serializerFor(mt)
	if !ok || mt == "*/*" || mt == "application/*" {
		return nil, nil, unsupportedMediaType(opts.contentType)
	}
	switch opts.fieldValidation {
	case "", "Warn", "Strict", "Ignore":
	default:
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of Ignore, Warn or Strict, got %q", opts.fieldValidation))
	}
	dec := info.Serializer
	if info.StrictSerializer != nil && opts.fieldValidation != "Ignore" {
		dec = info.StrictSerializer
	}
	gvk := res.gvk()
	obj, actual, err := dec.Decode(body, &gvk, res.newObj())
	var warnings []string
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		if opts.fieldValidation == "Strict" {
			return nil, nil, errStrict{apierrors.NewBadRequest(err.Error())}
		}
		if sde, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range sde.Errors() {
				warnings = append(warnings, e.Error())
			}
		}
	}
	if actual != nil && (actual.Kind != gvk.Kind || actual.GroupVersion() != gvk.GroupVersion()) ||
		reflect.TypeOf(obj) != reflect.TypeOf(res.newObj()) {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request is a %s, but this endpoint takes %s", actual, gvk))
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, warnings, nil
}

// errStrict is a 400 for unknown or duplicate fields under Strict field
// validation.
type errStrict struct{ *apierrors.StatusError }

func (e errStrict) Unwrap() error { return e.StatusError }

func warn(w http.ResponseWriter, warnings []string) {
	for _, m := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", m))
	}
}

func isDryRun(dryRun []string) (bool, error) {
	for _, d := range dryRun {
		if d != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("dryRun: unsupported value %q, supported values: %q", d, metav1.DryRunAll))
		}
	}
	return len(dryRun) > 0, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if info.name != "" && info.subresource == "" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), "POST on a named object"))
		return
	}
	var opts metav1.CreateOptions
	t, body, dryRun, err := s.writeRequest(r, &opts, &opts.DryRun)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if info.subresource != "" {
		s.createSubresource(w, r, t, info, body, dryRun)
		return
	}
	obj, warnings, err := s.decode(info.res, body, decodeOptions{contentType: r.Header.Get("Content-Type"), fieldValidation: opts.FieldValidation})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m := objectMeta(obj)
	if info.res.namespaced {
		switch m.GetNamespace() {
		case "":
			m.SetNamespace(info.namespace)
		case info.namespace:
		default:
			s.writeError(w, r, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
			return
		}
	}
	out, err := s.createObject(r.Context(), info.res, obj, writeOpts{dryRun: dryRun, manager: managerName(r, opts.FieldManager)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	warn(w, warnings)
	s.respond(w, r, t, info.res, http.StatusCreated, out)
}

// createObject runs the create path for obj: name generation, namespace
// lifecycle, defaults, server-set metadata, admission (pods' service
// accounts), validation, allocation, and the write.
func (s *Server) createObject(ctx context.Context, res *resource, obj runtime.Object, opts writeOpts) (runtime.Object, error) {
	dryRun := opts.dryRun
	m := objectMeta(obj)
	gk := res.gvk().GroupKind()
	if m.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		// Leave room for the random suffix in a 63-character name.
		base := m.GetGenerateName()
		if len(base) > maxGeneratedNameBase {
			base = base[:maxGeneratedNameBase]
		}
		m.SetName(base + utilrand.String(5))
	}
	if res.namespaced {
		if err := s.admitNamespace(ctx, m.GetNamespace()); err != nil {
			return nil, err
		}
	} else {
		m.SetNamespace("")
	}
	defaults.Object(obj)
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	if !opts.applied {
		m.SetManagedFields(nil)
	}
	m.SetSelfLink("")
	if hasSpec(obj) {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	if res.prepareForCreate != nil {
		res.prepareForCreate(obj)
	}
	if !opts.applied {
		obj = s.track(res, "", nil, obj, opts.manager)
		m = objectMeta(obj)
	}
	// Admission after managed fields, as upstream: what it adds is no
	// manager's.
	if pod, ok := obj.(*corev1.Pod); ok {
		if err := s.admitPodServiceAccount(ctx, pod); err != nil {
			return nil, err
		}
	}
	errs := validation.ValidateCreate(obj)
	if res.validate != nil {
		errs = append(errs, res.validate(obj)...)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, m.GetName(), errs)
	}
	release, err := s.allocate(ctx, res, obj, nil, dryRun)
	if err != nil {
		return nil, err
	}
	if dryRun {
		release()
		// A real create would fail on an existing object; so does
		// its dry run.
		if err := s.store.Get(ctx, res.key(m.GetNamespace(), m.GetName()), res.newObj()); err == nil {
			return nil, apierrors.NewAlreadyExists(res.groupResource(), m.GetName())
		}
		return obj, nil
	}
	if err := s.store.Create(ctx, res.key(m.GetNamespace(), m.GetName()), obj, res.ttl); err != nil {
		release()
		return nil, apiError(err, res.groupResource(), m.GetName())
	}
	return obj, nil
}

// admitNamespace: objects may only be created in a namespace that exists
// and is not being deleted (upstream's NamespaceLifecycle admission).
func (s *Server) admitNamespace(ctx context.Context, ns string) error {
	nsRes := s.reg.lookup(coreV1, "namespaces")
	obj := nsRes.newObj()
	if err := s.store.Get(ctx, nsRes.key("", ns), obj); err != nil {
		return apiError(err, nsRes.groupResource(), ns)
	}
	if objectMeta(obj).GetDeletionTimestamp() != nil {
		return apierrors.NewForbidden(nsRes.groupResource(), ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if info.name == "" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), "PUT on a collection"))
		return
	}
	var opts metav1.UpdateOptions
	t, body, dryRun, err := s.writeRequest(r, &opts, &opts.DryRun)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	dopts := decodeOptions{contentType: r.Header.Get("Content-Type"), fieldValidation: opts.FieldValidation}
	if info.subresource == "scale" {
		s.updateScale(w, r, info, body, dopts, dryRun)
		return
	}
	obj, warnings, err := s.decode(info.res, body, dopts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkIdentity(info, obj); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, created, err := s.updateObject(r.Context(), info, func(runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	}, writeOpts{dryRun: dryRun, create: info.res.allowCreateOnUpdate, manager: managerName(r, opts.FieldManager)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	warn(w, warnings)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.respond(w, r, t, info.res, code, out)
}

// checkIdentity: the body must name the object of the URL.
func checkIdentity(info *requestInfo, obj runtime.Object) error {
	m := objectMeta(obj)
	if m.GetName() != info.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name))
	}
	if info.res.namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(info.namespace)
		} else if m.GetNamespace() != info.namespace {
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	return nil
}

// writeOpts are the options every write shares.
type writeOpts struct {
	dryRun bool
	// manager is the field manager recorded in managedFields.
	manager string
	// create: a missing object is created (PUT where the resource
	// allows it; apply always).
	create bool
	// applied: next already recorded managedFields (an apply).
	applied bool
}

// errDryRun carries a dry run's result out of a storage update.
type errDryRun struct{ obj runtime.Object }

func (errDryRun) Error() string { return "dry run" }

// updateObject computes the new state of the object named by info with
// next (given the current state), applies the update semantics (status
// split, server-owned metadata, generation, validation) and writes it.
// With createOK a missing object is created when the resource allows it.
func (s *Server) updateObject(ctx context.Context, info *requestInfo, next func(cur runtime.Object) (runtime.Object, error), opts writeOpts) (runtime.Object, bool, error) {
	dryRun := opts.dryRun
	res := info.res
	gk := res.gvk().GroupKind()
	key := res.key(info.namespace, info.name)
	var prev runtime.Object
	out, err := s.store.GuaranteedUpdate(ctx, key, res.newObj, func(cur runtime.Object) (runtime.Object, error) {
		prev = cur
		obj, err := next(cur.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		m, cm := objectMeta(obj), objectMeta(cur)
		if rv := m.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return nil, apierrors.NewConflict(res.groupResource(), info.name, errors.New(conflictMsg))
		}
		if uid := m.GetUID(); uid != "" && uid != cm.GetUID() {
			return nil, apierrors.NewConflict(res.groupResource(), info.name,
				fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, cm.GetUID()))
		}
		switch info.subresource {
		case "status":
			// Only status changes; everything else stays as stored
			// (apps kinds also take annotations, as upstream).
			st := obj
			obj = cur.DeepCopyObject()
			copyField(obj, st, "Status")
			m = objectMeta(obj)
			if res.statusKeepsAnnotations {
				m.SetAnnotations(objectMeta(st).GetAnnotations())
			}
			if opts.applied {
				m.SetManagedFields(objectMeta(st).GetManagedFields())
			}
		case "finalize":
			// Only a namespace's spec.finalizers change.
			fin := obj.(*corev1.Namespace).Spec.Finalizers
			obj = cur.DeepCopyObject()
			obj.(*corev1.Namespace).Spec.Finalizers = fin
			m = objectMeta(obj)
		default:
			if res.status {
				copyField(obj, cur, "Status")
			}
			defaults.Object(obj)
		}
		// Server-owned metadata.
		m.SetName(cm.GetName())
		m.SetNamespace(cm.GetNamespace())
		m.SetUID(cm.GetUID())
		m.SetCreationTimestamp(cm.GetCreationTimestamp())
		m.SetDeletionTimestamp(cm.GetDeletionTimestamp())
		m.SetDeletionGracePeriodSeconds(cm.GetDeletionGracePeriodSeconds())
		m.SetResourceVersion(cm.GetResourceVersion())
		m.SetSelfLink("")
		m.SetGeneration(cm.GetGeneration())
		if specChanged(obj, cur) {
			m.SetGeneration(cm.GetGeneration() + 1)
		}
		if res.prepareForUpdate != nil && info.subresource == "" {
			res.prepareForUpdate(obj, cur)
		}
		if cm.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) > len(cm.GetFinalizers()) {
			for _, f := range m.GetFinalizers() {
				if !contains(cm.GetFinalizers(), f) {
					return nil, apierrors.NewForbidden(res.groupResource(), info.name,
						fmt.Errorf("no new finalizers can be added if the object is being deleted, found new finalizers %q", f))
				}
			}
		}
		if !opts.applied {
			obj = s.track(res, info.subresource, cur, obj, opts.manager)
		}
		errs := validation.ValidateUpdate(obj, cur)
		if res.validateUpdate != nil {
			errs = append(errs, res.validateUpdate(obj, cur)...)
		}
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(gk, info.name, errs)
		}
		if _, err := s.allocate(ctx, res, obj, cur, dryRun); err != nil {
			return nil, err
		}
		if dryRun {
			return nil, errDryRun{obj}
		}
		return obj, nil
	})
	var dr errDryRun
	switch {
	case errors.As(err, &dr):
		return dr.obj, false, nil
	case errors.Is(err, storage.ErrNotFound) && opts.create && info.subresource == "":
		obj, err := next(nil)
		if err != nil {
			return nil, false, err
		}
		m := objectMeta(obj)
		m.SetResourceVersion("")
		if m.GetName() != info.name {
			return nil, false, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name))
		}
		if res.namespaced {
			m.SetNamespace(info.namespace)
		}
		created, err := s.createObject(ctx, res, obj, opts)
		return created, err == nil, err
	case err != nil:
		return nil, false, apiError(err, res.groupResource(), info.name)
	}
	s.releaseDropped(ctx, out, prev)
	// Removing the last finalizer of an object being deleted (with no
	// grace period left) completes the deletion.
	m := objectMeta(out)
	if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && !s.blocksDeletion(res, out) &&
		(m.GetDeletionGracePeriodSeconds() == nil || *m.GetDeletionGracePeriodSeconds() == 0) {
		deleted := res.newObj()
		err := s.store.Delete(ctx, key, deleted, func(cur runtime.Object) error {
			if objectMeta(cur).GetResourceVersion() != m.GetResourceVersion() {
				return errChanged
			}
			return nil
		})
		if err == nil {
			return deleted, false, nil
		}
	}
	return out, false, nil
}

var errChanged = errors.New("object changed")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if info.name == "" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), "PATCH on a collection"))
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	pt := types.PatchType(ct)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType:
	default:
		s.writeError(w, r, unsupportedMediaType(fmt.Sprintf("%s: the body of the request was in an unknown format - accepted media types include: %s",
			r.Header.Get("Content-Type"), strings.Join([]string{string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType)}, ", "))))
		return
	}
	var opts metav1.PatchOptions
	t, body, dryRun, err := s.writeRequest(r, &opts, &opts.DryRun)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if info.subresource == "scale" {
		s.patchScale(w, r, info, pt, body, opts.FieldValidation, dryRun)
		return
	}
	var warnings []string
	wopts := writeOpts{dryRun: dryRun, manager: managerName(r, opts.FieldManager)}
	if pt == types.ApplyYAMLPatchType {
		if opts.FieldManager == "" {
			s.writeError(w, r, apierrors.NewBadRequest("fieldManager is required for apply requests"))
			return
		}
		wopts.create, wopts.applied = info.subresource == "", true
	}
	out, created, err := s.updateObject(r.Context(), info, func(cur runtime.Object) (runtime.Object, error) {
		if pt == types.ApplyYAMLPatchType {
			return s.apply(info.res, info.subresource, cur, body, opts.FieldManager, opts.Force != nil && *opts.Force)
		}
		patched, err := s.applyPatchTo(pt, cur, body, info.res.newObj())
		if err != nil {
			return nil, err
		}
		obj, ws, err := s.decode(info.res, patched, decodeOptions{fieldValidation: opts.FieldValidation})
		var strict errStrict
		if errors.As(err, &strict) {
			// In a patch, unknown fields are the patch's fault (as
			// upstream reports them).
			return nil, apierrors.NewInvalid(info.res.gvk().GroupKind(), info.name, field.ErrorList{
				field.Invalid(field.NewPath("patch"), string(body), strict.Error())})
		}
		if err != nil {
			return nil, err
		}
		warnings = ws
		return obj, nil
	}, wopts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	warn(w, warnings)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.respond(w, r, t, info.res, code, out)
}

// applyPatchTo applies a patch to the JSON form of obj.
func (s *Server) applyPatchTo(pt types.PatchType, obj runtime.Object, patch []byte, dataStruct runtime.Object) ([]byte, error) {
	doc, err := runtime.Encode(s.jsonInfo().Serializer, s.withKind(obj))
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("encode %T: %w", obj, err))
	}
	return applyPatch(pt, doc, patch, dataStruct)
}

// applyPatch applies a JSON, merge or strategic-merge patch to doc.
func applyPatch(pt types.PatchType, doc, patch []byte, dataStruct runtime.Object) ([]byte, error) {
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		out, err := p.Apply(doc)
		if err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	case types.MergePatchType:
		if !json.Valid(patch) {
			return nil, apierrors.NewBadRequest("error decoding patch: invalid JSON")
		}
		out, err := jsonpatch.MergePatch(doc, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return out, nil
	default:
		var pm map[string]interface{}
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		out, err := strategicpatch.StrategicMergePatch(doc, patch, dataStruct)
		if err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	}
}

// writeRequest reads what every write starts with: the response encoding,
// the options from the query (opts, whose DryRun field is dryRun), and the
// body.
func (s *Server) writeRequest(r *http.Request, opts runtime.Object, dryRun *[]string) (target, []byte, bool, error) {
	t, err := s.negotiate(r, true)
	if err != nil {
		return t, nil, false, notAcceptable(err.Error())
	}
	if err := s.params(r, opts); err != nil {
		return t, nil, false, err
	}
	dry, err := isDryRun(*dryRun)
	if err != nil {
		return t, nil, false, err
	}
	body, err := readBody(r)
	return t, body, dry, err
}
