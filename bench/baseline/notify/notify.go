// Package notify is what the two baseline handlers (bench/baseline/echo and
// bench/baseline/naive) share: the CRM notification body, decoded and
// validated with validator/v10 exactly as zohook's receiver declares it, and
// the HTTP server around the handler (echo, as the receiver uses). The
// baselines measure the HTTP + JSON + validation (+ one publish) floor that
// zohook's receiver is compared with in the same run (bench/compare.sh).
package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"
)

// Notification mirrors the receiver's crmNotification field for field, tags
// included, so that both baselines decode and validate what it does.
// affected_fields and affected_values stay raw: a naive handler stores the
// body and does not interpret them.
type Notification struct {
	ServerTime     int64           `json:"server_time" validate:"omitempty,gt=0"`
	QueryParams    map[string]any  `json:"query_params"`
	Module         string          `json:"module" validate:"required,zoho_api_name"`
	ResourceURI    string          `json:"resource_uri" validate:"max=2048"`
	IDs            []FlexString    `json:"ids" validate:"required,min=1,unique,dive,required,number,max=30"`
	AffectedFields json.RawMessage `json:"affected_fields"`
	AffectedValues json.RawMessage `json:"affected_values"`
	Operation      string          `json:"operation" validate:"required,oneof=insert create update edit delete"`
	ChannelID      FlexString      `json:"channel_id" validate:"required,number,max=30"`
	Token          string          `json:"token"`
}

// FlexString accepts a JSON string or number, as the receiver's ids do.
type FlexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be a string or a number")
	}
	*f = FlexString(n.String())
	return nil
}

var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)

// NewValidator is configured as the receiver's.
func NewValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
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
		panic(err)
	}
	return v
}

// Handler reads, decodes and validates a notification, then calls store
// (nil: none) and answers 200 with a small JSON body like the receiver's.
func Handler(v *validator.Validate, store func(c echo.Context, n *Notification, body []byte) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
		if err != nil {
			return c.JSON(http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		}
		var n Notification
		if err := json.Unmarshal(body, &n); err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": err.Error()})
		}
		if err := v.Struct(&n); err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": err.Error()})
		}
		if store != nil {
			if err := store(c, &n, body); err != nil {
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			}
		}
		return c.JSON(http.StatusOK, map[string]int{"accepted": len(n.IDs)})
	}
}

// Server is an echo server with the handler on the receiver's path.
func Server(h echo.HandlerFunc) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/zoho/crm/notify", h)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	return e
}
