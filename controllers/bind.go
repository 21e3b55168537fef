// Package controllers holds the Gin handlers of tokenauth. Each resource has
// a small struct holding what its handlers need; handlers bind and validate
// input, call the models, and render a response DTO. They return their
// errors (apierror.HandlerFunc), which are rendered in one place.
package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"
	"github.com/go-playground/validator/v10/non-standard/validators"

	"tokenauth/apierror"
)

// validate checks request structs by their `binding` tags, the tags Gin
// uses, and names fields by their JSON names. It is built once and only
// read afterwards (validator.Validate is safe for concurrent use).
var validate = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.SetTagName("binding")
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	_ = v.RegisterValidation("nocontrol", func(fl validator.FieldLevel) bool {
		return !strings.ContainsFunc(fl.Field().String(), unicode.IsControl)
	})
	_ = v.RegisterValidation("notblank", validators.NotBlank)
	return v
}()

// bindJSON reads the body as exactly one JSON object into dst and validates
// it. A body that is not one object is invalid_json; an unknown field, a
// wrong type, a string that is not text (see badText) or a broken rule is
// validation_failed naming the field.
func bindJSON(c *gin.Context, dst any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apierror.ErrBodyTooLarge
		}
		return apierror.ErrInvalidJSON
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return apierror.ErrInvalidJSON
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return apierror.ErrInvalidJSON // bytes after the object
	}
	return validateStruct(dst, badText(body))
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return apierror.Validation(map[string]string{typeErr.Field: "must be " + jsonKind(typeErr.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apierror.Validation(map[string]string{field: "is not a known field"})
	}
	return apierror.ErrInvalidJSON
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// validateStruct checks dst by its tags. fields holds what is already
// known to be wrong (by JSON name); a field named there keeps its message.
func validateStruct(dst any, fields map[string]string) error {
	var verrs validator.ValidationErrors
	if err := validate.Struct(dst); err != nil && !errors.As(err, &verrs) {
		return err
	}
	for _, fe := range verrs {
		name, _, _ := strings.Cut(fe.Field(), "[")
		if _, seen := fields[name]; !seen {
			if fields == nil {
				fields = map[string]string{}
			}
			fields[name] = fieldMessage(fe)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return apierror.Validation(fields)
}

func fieldMessage(fe validator.FieldError) string {
	isText := fe.Kind() == reflect.String
	switch fe.Tag() {
	case "required":
		return "is required"
	case "email":
		return "must be a valid email address"
	case "nocontrol":
		return "must not contain control characters"
	case "notblank":
		return "must not be blank"
	case "min", "gte":
		if isText {
			return fmt.Sprintf("must be at least %s characters", fe.Param())
		}
		if fe.Kind() == reflect.Slice {
			return fmt.Sprintf("must have at least %s items", fe.Param())
		}
		return "must be at least " + fe.Param()
	case "max", "lte":
		if isText {
			return fmt.Sprintf("must be at most %s characters", fe.Param())
		}
		if fe.Kind() == reflect.Slice {
			return fmt.Sprintf("must have at most %s items", fe.Param())
		}
		return "must be at most " + fe.Param()
	}
	return "is invalid"
}
