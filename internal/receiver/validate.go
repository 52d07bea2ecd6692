package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-playground/validator/v10"
)

// apiName matches Zoho API names of modules and fields (Deals, Sales_Orders,
// Orders__c).
var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)

func newValidator() (*validator.Validate, error) {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Report JSON names, not Go names, so error bodies speak the caller's language.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	if err := v.RegisterValidation("zoho_api_name", func(fl validator.FieldLevel) bool {
		return apiName.MatchString(fl.Field().String())
	}); err != nil {
		return nil, fmt.Errorf("receiver: validator: %w", err)
	}
	return v, nil
}

// fieldErrors turns validator errors into FieldErrors with JSON paths
// (ids[2]) and plain messages.
func fieldErrors(err error) []FieldError {
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return []FieldError{{Field: "body", Message: err.Error()}}
	}
	out := make([]FieldError, 0, len(verrs))
	for _, fe := range verrs {
		path := fe.Namespace()
		if _, rest, ok := strings.Cut(path, "."); ok {
			path = rest // drop the struct's own name
		}
		out = append(out, FieldError{Field: path, Message: message(fe)})
	}
	return out
}

func message(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "number":
		return "must be a string of digits (a Zoho id)"
	case "oneof":
		return "must be one of: " + fe.Param()
	case "max":
		if fe.Kind() == reflect.Slice {
			return "must have at most " + fe.Param() + " items"
		}
		return "must be at most " + fe.Param() + " characters"
	case "min":
		if fe.Kind() == reflect.Slice {
			return "must have at least " + fe.Param() + " item(s)"
		}
		return "must be at least " + fe.Param() + " characters"
	case "unique":
		return "must not contain duplicates"
	case "zoho_api_name":
		return "must be a Zoho API name (letters, digits, underscores)"
	case "gt":
		return "must be greater than " + fe.Param()
	default:
		return "failed " + fe.Tag() + " check"
	}
}

// flexString accepts a JSON string or number: Zoho documents ids as strings
// but channel ids are registered as numbers and some callers echo them so.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be a string or a number")
	}
	*f = flexString(n.String())
	return nil
}

// decodeError turns a decoder error into a 400 that names the field when
// the decoder knows it.
func decodeError(err error) *RequestError {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return badRequest("invalid body", FieldError{Field: ute.Field, Message: "must be " + jsonKind(ute.Type)})
	}
	return badRequest("invalid JSON: " + err.Error())
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	}
	return "of type " + t.String()
}
