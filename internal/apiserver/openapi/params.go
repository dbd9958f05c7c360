package openapi

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// queryParam is one query parameter, read off a field of an options kind.
type queryParam struct {
	name        string
	description string
	// dataType is a type name common.OpenAPITypeFormat understands.
	dataType string
	// multiple is set for list fields (dryRun, command, ports), which are
	// passed by repeating the parameter.
	multiple bool
}

// optionFields derives query parameters from the generated schemas of
// options kinds, the way kube-apiserver derives them from the Go structs:
// every field of a scalar type, or a list of scalars, is a parameter.
// Object fields (DeleteOptions.preconditions) can only travel in a body.
type optionFields struct {
	defs  map[string]common.OpenAPIDefinition
	cache map[string][]queryParam
}

func newOptionFields(defs map[string]common.OpenAPIDefinition) *optionFields {
	return &optionFields{defs: defs, cache: map[string][]queryParam{}}
}

// of returns the parameters of an options model, sorted by name.
func (o *optionFields) of(model string) ([]queryParam, error) {
	if params, ok := o.cache[model]; ok {
		return params, nil
	}
	def, ok := o.defs[model]
	if !ok {
		return nil, fmt.Errorf("no OpenAPI definition for options %s", model)
	}
	names := make([]string, 0, len(def.Schema.Properties))
	for name := range def.Schema.Properties {
		names = append(names, name)
	}
	sort.Strings(names)

	var params []queryParam
	for _, name := range names {
		if name == "kind" || name == "apiVersion" {
			continue // type metadata, not an option
		}
		prop := def.Schema.Properties[name]
		dataType, multiple := o.scalar(prop)
		if dataType == "" {
			continue
		}
		params = append(params, queryParam{
			name:        name,
			description: prop.Description,
			dataType:    dataType,
			multiple:    multiple,
		})
	}
	o.cache[model] = params
	return params, nil
}

// scalar reports the parameter type of a field schema, following one
// reference (metav1.Time is a string) and one level of list. It returns ""
// for anything that cannot be written in a query string.
func (o *optionFields) scalar(s spec.Schema) (dataType string, multiple bool) {
	if ref := s.Ref.String(); ref != "" {
		target, ok := o.defs[ref[strings.LastIndex(ref, "/")+1:]]
		if !ok {
			return "", false
		}
		s = target.Schema
	}
	if len(s.Type) != 1 {
		return "", false
	}
	if s.Type[0] == "array" {
		if s.Items == nil || s.Items.Schema == nil || s.Items.Schema.Ref.String() != "" {
			return "", false
		}
		dataType, _ := o.scalar(*s.Items.Schema)
		return dataType, dataType != ""
	}
	return dataTypeOf(s.Type[0], s.Format), false
}

// dataTypeOf maps an OpenAPI type and format back to the name that
// common.OpenAPITypeFormat, which the builders call, maps to them.
func dataTypeOf(typ, format string) string {
	switch typ {
	case "string":
		switch format {
		case "date-time":
			return "time.Time"
		case "byte":
			return "[]byte"
		}
		return "string"
	case "integer":
		switch format {
		case "int32", "int64":
			return format
		}
		return "integer"
	case "number":
		switch format {
		case "double":
			return "float64"
		case "float":
			return "float32"
		}
		return "number"
	case "boolean":
		return "boolean"
	}
	return ""
}
