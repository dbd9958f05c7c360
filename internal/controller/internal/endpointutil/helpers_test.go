package endpointutil

import (
	"slices"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

func typesUID(s string) types.UID { return types.UID(s) }

func setOf(keys ...string) sets.Set[string] { return sets.New(keys...) }

func sortedList(s sets.Set[string]) []string {
	l := s.UnsortedList()
	slices.Sort(l)
	return l
}
