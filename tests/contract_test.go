package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contract is docs/openapi.yaml, the description of every route that
// clients rely on. Server.Do checks every exchange of every test against
// it, so the service and its description cannot drift apart.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	// probe stands for the routes the spec deliberately leaves out: a
	// request marked OffSpec may get any of the spec's error responses.
	probe *openapi3.Operation
}

// contracts holds each spec parsed, by its text: parsing costs more than
// most tests, and most tests serve the same spec.
var contracts sync.Map // string -> *contract

// loadContract parses spec, the document a server serves at
// /api/openapi.yaml (docs/openapi.yaml with its scopes), once for the
// whole test binary; the result is only read afterwards.
func loadContract(spec []byte) (*contract, error) {
	if c, ok := contracts.Load(string(spec)); ok {
		return c.(*contract), nil
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("parsing docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing docs/openapi.yaml: %w", err)
	}
	probe := openapi3.NewOperation()
	for status, name := range map[int]string{
		400: "BadRequest", 401: "Unauthorized", 403: "ForbiddenOrScope", 404: "NotFound",
		405: "MethodNotAllowed", 409: "Conflict", 413: "BodyTooLarge", 429: "RateLimited",
		431: "HeadersTooLarge", 500: "InternalError", 503: "Unavailable",
	} {
		resp := doc.Components.Responses[name]
		if resp == nil {
			return nil, fmt.Errorf("docs/openapi.yaml has no components.responses.%s", name)
		}
		probe.AddResponse(status, resp.Value)
	}
	c, _ := contracts.LoadOrStore(string(spec), &contract{doc: doc, router: router, probe: probe})
	return c.(*contract), nil
}

// errNotInSpec is a request for a path and method the spec does not
// describe.
var errNotInSpec = errors.New("is not in docs/openapi.yaml")

// findRoute returns the spec's operation for the request. Every path
// answers with and without its trailing slash, and the spec spells each
// path one way, so both spellings are looked up. A HEAD request is looked
// up as its GET (see asGet).
func (c *contract) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	req = asGet(req)
	route, params, err := c.router.FindRoute(req)
	if err == nil {
		return route, params, nil
	}
	path := req.URL.Path
	switch {
	case path == "/":
		return nil, nil, errNotInSpec
	case strings.HasSuffix(path, "/"):
		path = strings.TrimSuffix(path, "/")
	default:
		path += "/"
	}
	other := req.Clone(req.Context())
	other.URL.Path, other.URL.RawPath = path, ""
	if route, params, err = c.router.FindRoute(other); err != nil {
		return nil, nil, errNotInSpec
	}
	return route, params, nil
}

// asGet returns a HEAD request as the GET it stands for. HTTP defines
// HEAD as GET without the body (RFC 9110, section 9.3.2), and the service
// answers HEAD wherever it serves GET, with the GET's handler. The spec
// describes the GETs only: a head operation beside each would double every
// read in the document and in the clients generated from it, with nothing
// to say that its GET does not, and redocly lint accepts the document
// either way. So a HEAD exchange is held to its GET's operation (status
// and headers) and must carry no body.
func asGet(req *http.Request) *http.Request {
	if req.Method != http.MethodHead {
		return req
	}
	get := req.Clone(req.Context())
	get.Method = http.MethodGet
	return get
}

// methodsOf returns the methods the spec gives the request's path, HEAD
// beside GET, sorted; nil when the spec has no such path. They are what
// a 405 for that path must list in Allow.
func (c *contract) methodsOf(req *http.Request) []string {
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace} {
		other := req.Clone(req.Context())
		other.Method = method
		route, _, err := c.findRoute(other)
		if err != nil {
			continue
		}
		methods := slices.Collect(maps.Keys(route.PathItem.Operations()))
		if route.PathItem.Get != nil {
			methods = append(methods, http.MethodHead)
		}
		slices.Sort(methods)
		return methods
	}
	return nil
}

// check validates one exchange: the request must be one the spec
// describes (or, when offSpec, one it does not), the status one its
// operation lists, and the headers and body what that response says. A
// request the service accepted (2xx) must also be one the spec allows, or
// the service is laxer than its contract. A 405 must list in Allow the
// methods the spec gives the path.
func (c *contract) check(req *http.Request, reqBody []byte, resp *Response, offSpec bool) error {
	ctx := context.Background()
	opts := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
	if req.Method == http.MethodHead {
		// Server.Do reads a HEAD answer off the wire, where a body would
		// show (Go's client never reads one).
		if len(resp.Body) > 0 {
			return fmt.Errorf("the answer to HEAD has a body (%d bytes)", len(resp.Body))
		}
		// Held to the GET, whose body a HEAD answer leaves out.
		req = asGet(req)
		opts.ExcludeResponseBody = true
	}
	route, params, err := c.findRoute(req)
	switch {
	case offSpec && err == nil:
		return fmt.Errorf("is marked OffSpec but docs/openapi.yaml describes %s %s", route.Method, route.Path)
	case offSpec:
		if resp.Status < 400 {
			return nil // a route a test added (WithRoutes) answers what it likes
		}
		if resp.Status == http.StatusMethodNotAllowed {
			if err := c.checkAllow(req, resp.Header.Get("Allow")); err != nil {
				return err
			}
		}
		// Whatever the path, an error is one of the spec's error responses.
		route = &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method, Operation: c.probe}
	case err != nil:
		return err
	}
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if !offSpec && resp.Status >= 200 && resp.Status < 300 {
		input.Request = req.Clone(ctx)
		input.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			return fmt.Errorf("the service accepted a request that %s %s does not allow: %w", route.Method, route.Path, err)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 resp.Status,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(resp.Body)),
		Options:                opts,
	})
	if err != nil {
		return fmt.Errorf("the response does not match %s %s %d: %w", route.Method, route.Path, resp.Status, err)
	}
	return nil
}

// checkAllow holds the Allow header of a 405 to the methods the spec gives
// the path (a path the spec does not have, such as one a test added, is
// not checked).
func (c *contract) checkAllow(req *http.Request, allow string) error {
	want := c.methodsOf(req)
	if want == nil {
		return nil
	}
	got := strings.Split(allow, ", ")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("405 with Allow %q, but docs/openapi.yaml gives the path %s", allow, strings.Join(want, ", "))
	}
	return nil
}
