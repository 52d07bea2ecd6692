package receiver

import (
	"fmt"
	"net/http"
	"strings"
)

// FieldError names one invalid field of a callback body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ErrorBody is the JSON body of every 4xx/5xx answer.
type ErrorBody struct {
	Error  string       `json:"error"`
	Fields []FieldError `json:"fields,omitempty"`
}

// RequestError is a refusal with an HTTP status; decoders return it so the
// shared ingest path can answer without knowing the source.
type RequestError struct {
	Status int
	Body   ErrorBody
}

func (e *RequestError) Error() string {
	if len(e.Body.Fields) == 0 {
		return fmt.Sprintf("%d: %s", e.Status, e.Body.Error)
	}
	parts := make([]string, len(e.Body.Fields))
	for i, f := range e.Body.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("%d: %s (%s)", e.Status, e.Body.Error, strings.Join(parts, "; "))
}

func badRequest(msg string, fields ...FieldError) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Body: ErrorBody{Error: msg, Fields: fields}}
}

func unauthorized(msg string) *RequestError {
	return &RequestError{Status: http.StatusUnauthorized, Body: ErrorBody{Error: msg}}
}
