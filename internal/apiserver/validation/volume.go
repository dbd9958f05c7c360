package validation

import (
	"path"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// volumeSourceOrder is the order upstream inspects volume sources in; with
// two sources set, the later one is reported.
var volumeSourceOrder = []string{
	"emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs",
	"iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte",
	"downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk",
	"portworxVolume", "azureDisk", "storageos", "projected", "scaleIO", "csi", "ephemeral", "image",
}

// validateVolumes checks the pod's volumes and returns the valid ones by
// name, for the containers' mounts to refer to.
func validateVolumes(volumes []corev1.Volume, podName string, isPod bool, p *field.Path) (map[string]corev1.VolumeSource, field.ErrorList) {
	var errs field.ErrorList
	valid := map[string]corev1.VolumeSource{}
	seen := map[string]bool{}
	for i := range volumes {
		v, vp := &volumes[i], p.Index(i)
		el := validateVolumeSource(&v.VolumeSource, v.Name, podName, isPod, vp)
		if v.Name == "" {
			el = append(el, field.Required(vp.Child("name"), ""))
		} else {
			el = append(el, dnsLabel(v.Name, vp.Child("name"))...)
		}
		if seen[v.Name] {
			el = append(el, field.Duplicate(vp.Child("name"), v.Name))
		}
		if len(el) == 0 {
			seen[v.Name] = true
			valid[v.Name] = v.VolumeSource
		}
		errs = append(errs, el...)
	}
	return valid, errs
}

// volumeSources lists the sources set in src, by JSON name, in upstream's
// order.
func volumeSources(src *corev1.VolumeSource) []string {
	set := map[string]bool{}
	rv, rt := reflect.ValueOf(src).Elem(), reflect.TypeOf(*src)
	for i := 0; i < rt.NumField(); i++ {
		if !rv.Field(i).IsNil() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			set[name] = true
		}
	}
	var names []string
	for _, n := range volumeSourceOrder {
		if set[n] {
			names = append(names, n)
		}
	}
	return names
}

func validateVolumeSource(src *corev1.VolumeSource, volName, podName string, isPod bool, p *field.Path) field.ErrorList {
	sources := volumeSources(src)
	if len(sources) == 0 {
		return field.ErrorList{field.Required(p, "must specify a volume type")}
	}
	var errs field.ErrorList
	for _, extra := range sources[1:] {
		errs = append(errs, field.Forbidden(p.Child(extra), "may not specify more than 1 volume type"))
	}
	sp := p.Child(sources[0])
	switch sources[0] {
	case "emptyDir":
		if sl := src.EmptyDir.SizeLimit; sl != nil && sl.Sign() < 0 {
			errs = append(errs, field.Forbidden(sp.Child("sizeLimit"), "SizeLimit field must be a valid resource quantity"))
		}
	case "hostPath":
		errs = append(errs, validateHostPath(src.HostPath, sp)...)
	case "secret":
		s := src.Secret
		if s.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		}
		errs = append(errs, fileMode(s.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, keyToPaths(s.Items, sp.Child("items"))...)
	case "configMap":
		cm := src.ConfigMap
		if cm.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
		errs = append(errs, fileMode(cm.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, keyToPaths(cm.Items, sp.Child("items"))...)
	case "persistentVolumeClaim":
		if src.PersistentVolumeClaim.ClaimName == "" {
			errs = append(errs, field.Required(sp.Child("claimName"), ""))
		}
	case "nfs":
		if src.NFS.Server == "" {
			errs = append(errs, field.Required(sp.Child("server"), ""))
		}
		if src.NFS.Path == "" {
			errs = append(errs, field.Required(sp.Child("path"), ""))
		}
		if !path.IsAbs(src.NFS.Path) {
			errs = append(errs, field.Invalid(sp.Child("path"), src.NFS.Path, "must be an absolute path"))
		}
	case "downwardAPI":
		errs = append(errs, fileMode(src.DownwardAPI.DefaultMode, sp.Child("defaultMode"))...)
		for _, f := range src.DownwardAPI.Items {
			errs = append(errs, downwardAPIFile(&f, sp)...)
		}
	case "projected":
		errs = append(errs, validateProjected(src.Projected, sp)...)
	case "csi":
		if src.CSI.Driver == "" {
			errs = append(errs, field.Required(sp.Child("driver"), ""))
		}
	case "ephemeral":
		if src.Ephemeral.VolumeClaimTemplate == nil {
			errs = append(errs, field.Required(sp.Child("volumeClaimTemplate"), ""))
		}
		if podName != "" && volName != "" {
			pvc := podName + "-" + volName
			for _, msg := range nameIsDNSSubdomain(pvc, false) {
				errs = append(errs, field.Invalid(p.Child("name"), volName, "PVC name \""+pvc+"\": "+msg))
			}
		}
	case "image":
		if isPod && src.Image.Reference == "" {
			errs = append(errs, field.Required(sp.Child("reference"), ""))
		}
		errs = append(errs, oneOf(src.Image.PullPolicy, sp.Child("pullPolicy"), corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever)...)
	}
	return errs
}

var hostPathTypes = []corev1.HostPathType{
	corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
	corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev,
}

func validateHostPath(hp *corev1.HostPathVolumeSource, p *field.Path) field.ErrorList {
	if hp.Path == "" {
		return field.ErrorList{field.Required(p.Child("path"), "")}
	}
	errs := noBacksteps(hp.Path, p.Child("path"))
	if hp.Type != nil {
		errs = append(errs, supported(*hp.Type, p.Child("type"), hostPathTypes...)...)
	}
	return errs
}

func fileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode > 0o777 || *mode < 0) {
		return field.ErrorList{field.Invalid(p, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

func keyToPaths(items []corev1.KeyToPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		ip := p.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, localNonReservedPath(kp.Path, ip.Child("path"))...)
		errs = append(errs, fileMode(kp.Mode, ip.Child("mode"))...)
	}
	return errs
}

// localNonReservedPath: relative, no "..", and not starting with "..",
// which the kubelet's atomic writer reserves.
func localNonReservedPath(v string, p *field.Path) field.ErrorList {
	errs := localDescendingPath(v, p)
	if strings.HasPrefix(v, "..") && !strings.HasPrefix(v, "../") {
		errs = append(errs, field.Invalid(p, v, "must not start with '..'"))
	}
	return errs
}

var volumeFieldPaths = []string{"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"}

func downwardAPIFile(f *corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	errs = append(errs, localNonReservedPath(f.Path, p.Child("path"))...)
	switch {
	case f.FieldRef != nil:
		errs = append(errs, validateFieldSelector(f.FieldRef, volumeFieldPaths, p.Child("fieldRef"))...)
		if f.ResourceFieldRef != nil {
			errs = append(errs, field.Invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		}
	case f.ResourceFieldRef != nil:
		errs = append(errs, validateResourceFieldSelector(f.ResourceFieldRef, true, p.Child("resourceFieldRef"))...)
	default:
		errs = append(errs, field.Required(p, "one of fieldRef and resourceFieldRef is required"))
	}
	return append(errs, fileMode(f.Mode, p.Child("mode"))...)
}

func validateProjected(pv *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	errs := fileMode(pv.DefaultMode, p.Child("defaultMode"))
	paths := map[string]bool{}
	conflict := func(name, v string) {
		if v == "" {
			return
		}
		if paths[v] {
			errs = append(errs, field.Invalid(p, name, "conflicting duplicate paths"))
		}
		paths[v] = true
	}
	for i, s := range pv.Sources {
		sp := p.Child("sources").Index(i)
		n := 0
		if s.Secret != nil {
			n++
			if s.Secret.Name == "" {
				errs = append(errs, field.Required(sp.Child("secret", "name"), ""))
			}
			errs = append(errs, keyToPaths(s.Secret.Items, sp.Child("secret", "items"))...)
			for _, kp := range s.Secret.Items {
				conflict(s.Secret.Name, kp.Path)
			}
		}
		if s.ConfigMap != nil {
			n++
			if s.ConfigMap.Name == "" {
				errs = append(errs, field.Required(sp.Child("configMap", "name"), ""))
			}
			errs = append(errs, keyToPaths(s.ConfigMap.Items, sp.Child("configMap", "items"))...)
			for _, kp := range s.ConfigMap.Items {
				conflict(s.ConfigMap.Name, kp.Path)
			}
		}
		if s.DownwardAPI != nil {
			n++
			for _, f := range s.DownwardAPI.Items {
				errs = append(errs, downwardAPIFile(&f, sp.Child("downwardAPI"))...)
				conflict(f.Path, f.Path)
			}
		}
		if t := s.ServiceAccountToken; t != nil {
			n++
			tp := sp.Child("serviceAccountToken")
			if e := t.ExpirationSeconds; e != nil {
				if *e < 10*60 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
				}
				if *e > 1<<32 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
				}
			}
			if t.Path == "" {
				errs = append(errs, field.Required(tp.Child("path"), ""))
			} else {
				errs = append(errs, localNonReservedPath(t.Path, tp.Child("path"))...)
			}
			conflict(t.Path, t.Path)
		}
		if s.ClusterTrustBundle != nil {
			n++
		}
		if s.PodCertificate != nil {
			n++
		}
		if n > 1 {
			errs = append(errs, field.Forbidden(sp, "may not specify more than 1 volume type per source"))
		}
	}
	return errs
}
