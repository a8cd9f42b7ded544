package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
)

// TestShutdownRoute: POST /v1/shutdown answers 202 and then calls
// Options.Shutdown; it needs the token like every route but /healthz;
// only POST; without Options.Shutdown it answers 501.
func TestShutdownRoute(t *testing.T) {
	called := make(chan struct{})
	e := newEnv(t, httpapi.Options{Token: "s3cret", Shutdown: func() { close(called) }})

	e.do("POST", "/v1/shutdown", nil, "Authorization", "Bearer wrong").wantError(t, http.StatusUnauthorized, httpapi.CodeUnauthorized, "")
	r := e.get("/v1/shutdown")
	r.wantError(t, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "")
	select {
	case <-called:
		t.Fatal("shut down by a refused request")
	default:
	}

	r = e.do("POST", "/v1/shutdown", nil)
	require.Equal(t, http.StatusAccepted, r.code, r.body)
	require.JSONEq(t, `{"status":"shutting down"}`, r.body)
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("Options.Shutdown was not called")
	}

	e = newEnv(t, httpapi.Options{})
	e.do("POST", "/v1/shutdown", nil).wantError(t, http.StatusNotImplemented, httpapi.CodeNotImplemented, "")
}
