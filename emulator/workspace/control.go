package workspace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// maxDownFor bounds a timed down: longer than a test or a workshop's demo needs, short enough that a typo does not
// leave the workspace down for the day.
const maxDownFor = 10 * time.Minute

// controlAPI is the control API: the HTTP face of what the workspace plays on purpose.
type controlAPI struct {
	ws     controlled
	url    string // the workspace's
	logger *slog.Logger
}

// controlled is what the control API drives: the workspace's own methods.
type controlled interface {
	InjectFault(f Fault) (*InjectedFault, error)
	Faults() []*InjectedFault
	ClearFaults()
	RevokeTokens(name string) error
	down(upAfter time.Duration) error
}

// routes serves the control API to the local machine only. Browsers on this machine are local too, so it
// also refuses what a browser sends from another origin: a web page must not take the workspace down.
func (c *controlAPI) routes(r chi.Router) {
	crossOrigin := http.NewCrossOriginProtection()
	crossOrigin.SetDenyHandler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
			Message: "the emulator's control API refuses requests a browser sends from another origin"})
	}))
	r.Use(localOnly, crossOrigin.Handler)
	r.Get(PathFaults, c.handleListFaults())
	r.Post(PathFaults, c.handleInjectFault())
	r.Delete(PathFaults, c.handleClearFaults())
	r.Delete(PathFaults+"/{id}", c.handleClearFault())
	r.Post(PathRevoke, c.handleRevoke())
	r.Post(PathDown, c.handleDown())
}

// fromLocalMachine reports whether r comes from this machine and names it, the only machine the emulator's own tools
// serve: a loopback client that asked for a loopback host. The Host check keeps out a web page whose name its
// owner's DNS points at 127.0.0.1 once the page is loaded (DNS rebinding): its requests come from loopback, and pass
// as same-origin, but name the page's host.
func fromLocalMachine(r *http.Request) bool {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	return err == nil && net.ParseIP(client).IsLoopback() && isLoopbackHost(r.Host)
}

// isLoopbackHost reports whether a Host header ("127.0.0.1:8080", "[::1]:80", "localhost:3000") names this machine.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !fromLocalMachine(r) {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
				Message: "the emulator's control API answers the local machine only"})
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// faultJSON is a Fault on the wire, its Delay a Go duration such as "1.5s".
type faultJSON struct {
	App        string `json:"app,omitempty"`
	Method     string `json:"method,omitempty"`
	Path       string `json:"path"`
	Principal  string `json:"principal,omitempty"`
	Status     int    `json:"status,omitempty"`
	Message    string `json:"message,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
	Redirect   string `json:"redirect,omitempty"`
	BodyBytes  int64  `json:"body_bytes,omitempty"`
	Chunked    bool   `json:"chunked,omitempty"`
	Stall      bool   `json:"stall,omitempty"`
	Reset      bool   `json:"reset,omitempty"`
	Delay      string `json:"delay,omitempty"`
	Times      int    `json:"times,omitempty"`
}

// injectedJSON is an injected fault as the control API shows it.
type injectedJSON struct {
	ID string `json:"id"`
	faultJSON
	Answer string `json:"answer"` // what it plays, in words: "delay 50ms, then status 503"
	Hits   int    `json:"hits"`
}

func injectedToJSON(f *InjectedFault) injectedJSON {
	ff := f.Fault()
	doc := injectedJSON{ID: f.ID(), Answer: f.describe(), Hits: f.Hits(), faultJSON: faultJSON{App: ff.App,
		Method: ff.Method, Path: ff.Path, Principal: ff.Principal, Status: ff.Status, Message: ff.Message,
		RetryAfter: ff.RetryAfter, Redirect: ff.Redirect, BodyBytes: ff.BodyBytes, Chunked: ff.Chunked,
		Stall: ff.Stall, Reset: ff.Reset, Times: ff.Times}}
	if ff.Delay > 0 {
		doc.Delay = ff.Delay.String()
	}
	return doc
}

// decodeStrict reads a JSON body into v, refusing fields v does not have: a misspelt "stauts" must not inject a
// fault that does something else.
func decodeStrict(rw http.ResponseWriter, r *http.Request, v any) *jsonhttp.Error {
	var raw json.RawMessage
	if jerr := jsonhttp.Decode(rw, r, maxAPIBody, &raw); jerr != nil {
		return jerr
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badControlRequest("malformed JSON body: " + err.Error())
	}
	return nil
}

func badControlRequest(message string) *jsonhttp.Error {
	return &jsonhttp.Error{Status: http.StatusBadRequest, Code: jsonhttp.CodeInvalidParameter, Message: message,
		Fix: "see docs/emulator.md, \"Faults on purpose\""}
}

func (c *controlAPI) handleInjectFault() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req faultJSON
		if jerr := decodeStrict(rw, r, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		var delay time.Duration
		if req.Delay != "" {
			d, err := time.ParseDuration(req.Delay)
			if err != nil {
				jsonhttp.WriteError(rw, badControlRequest(fmt.Sprintf("delay %q: want a duration such as 50ms or 1.5s",
					req.Delay)))
				return
			}
			delay = d
		}
		f, err := c.ws.InjectFault(Fault{App: req.App, Method: req.Method, Path: req.Path, Principal: req.Principal,
			Status: req.Status, Message: req.Message, RetryAfter: req.RetryAfter, Redirect: req.Redirect,
			BodyBytes: req.BodyBytes, Chunked: req.Chunked, Stall: req.Stall, Reset: req.Reset, Delay: delay,
			Times: req.Times})
		if err != nil {
			jsonhttp.WriteError(rw, badControlRequest(err.Error()))
			return
		}
		jsonhttp.Write(rw, http.StatusCreated, injectedToJSON(f))
	}
}

func (c *controlAPI) handleListFaults() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		docs := []injectedJSON{}
		for _, f := range c.ws.Faults() {
			docs = append(docs, injectedToJSON(f))
		}
		jsonhttp.Write(rw, http.StatusOK, map[string][]injectedJSON{"faults": docs})
	}
}

func (c *controlAPI) handleClearFaults() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		n := len(c.ws.Faults())
		c.ws.ClearFaults()
		c.logger.Info("faults cleared", "faults", n)
		jsonhttp.Write(rw, http.StatusOK, map[string]int{"cleared": n})
	}
}

func (c *controlAPI) handleClearFault() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		for _, f := range c.ws.Faults() {
			if f.ID() == id {
				f.Clear()
				c.logger.Info("fault cleared", "fault", id, "hits", f.Hits())
				jsonhttp.Write(rw, http.StatusOK, injectedToJSON(f))
				return
			}
		}
		jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusNotFound, Code: jsonhttp.CodeNotFound,
			Message: fmt.Sprintf("no fault %q is being played", truncate(id, 100)),
			Fix:     "GET " + PathFaults + " lists them"})
	}
}

func (c *controlAPI) handleRevoke() http.HandlerFunc {
	type request struct {
		Principal string `json:"principal"`
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		var req request
		if jerr := decodeStrict(rw, r, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		if err := c.ws.RevokeTokens(req.Principal); err != nil {
			jsonhttp.WriteError(rw, badControlRequest(err.Error()))
			return
		}
		jsonhttp.Write(rw, http.StatusOK, map[string]string{"revoked": req.Principal})
	}
}

// handleDown takes the workspace down for a while. It answers only once the workspace is down, on its own
// connection, taken over for that: a client that reads the answer and calls again finds nothing listening.
func (c *controlAPI) handleDown() http.HandlerFunc {
	type request struct {
		For string `json:"for"` // a Go duration: how long the workspace stays down
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		var req request
		if jerr := decodeStrict(rw, r, &req); jerr != nil {
			jsonhttp.WriteError(rw, jerr)
			return
		}
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 || d > maxDownFor {
			jsonhttp.WriteError(rw, badControlRequest(fmt.Sprintf(
				"for %q: want how long to stay down, a duration up to %s such as 2s", req.For, maxDownFor)))
			return
		}
		conn, buf, err := http.NewResponseController(rw).Hijack() // Down closes every connection it serves
		if err != nil {
			jsonhttp.WriteError(rw, &jsonhttp.Error{Status: http.StatusInternalServerError, Code: jsonhttp.CodeInternal,
				Message: "the workspace could not take over the connection to answer after going down: " + err.Error()})
			return
		}
		defer conn.Close()
		status, answer := http.StatusAccepted, any(map[string]string{"down_for": d.String(), "url": c.url})
		if err := c.ws.down(d); err != nil {
			status, answer = http.StatusServiceUnavailable, &jsonhttp.Error{Code: jsonhttp.CodeUnavailable,
				Message: err.Error()}
		}
		body, _ := json.Marshal(answer)
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"Connection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
		_ = buf.Flush()
	}
}
