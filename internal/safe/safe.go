// Package safe reads values that user code hands the library without
// trusting their methods.
package safe

import "fmt"

// Text returns v's text as fmt prints it or, should that panic (fmt contains
// a panicking Error or String method only once, not a value whose method
// panics with the value itself), a description of v's type.
func Text(v any) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("%T (its text panics)", v)
		}
	}()
	return fmt.Sprint(v)
}
