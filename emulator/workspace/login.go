package workspace

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// The workspace's sign-in for browsers. An app proxy sends a browser without a session to PathLogin with the URL
// it asked for (next_url); the person picks a user of the model (no passwords: the emulator is local), allows the
// app's user authorization scopes on the consent page if it has any, and goes back to the app's proxy with a
// one-time code the proxy exchanges for its session cookie (sessions.go).
//
// Both forms carry a CSRF token: an HMAC, under a key made at start, of a random value in a cookie of this browser
// and of what the form is about (the app's URL, the user, the scopes shown), so a token works only in the browser
// it was given to and for the choice it was shown with. Go's CrossOriginProtection also refuses a form posted from
// another origin outright. next_url must be on an app proxy of this workspace, and the browser returns to that
// proxy's own URL with the path: never to a host the request names.

// loginCookie holds the browser's random value the forms' CSRF tokens are bound to.
const loginCookie = emulatorCookiePrefix + "login"

// maxNextURL bounds next_url; a browser's URL is rarely longer.
const maxNextURL = 4096

// signInTarget is where a sign-in returns: an app proxy of this workspace, and a path and query on it.
type signInTarget struct {
	app  *appProxy
	next string
	// scopes are the app's effective user_api_scopes, read once for the request: the scopes the consent shows, its
	// token covers and the session gets are the same even when the app or the workspace's setting changes meanwhile.
	scopes []string
}

func (t signInTarget) url() string { return t.app.url + t.next }

// signInTarget checks next_url: it must be an http URL on the origin of one of the workspace's app proxies.
func (s *sessions) signInTarget(raw string) (signInTarget, string) {
	notAnApp := "next_url must be the URL of an app of this workspace"
	if len(raw) > maxNextURL {
		return signInTarget{}, notAnApp
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return signInTarget{}, notAnApp
	}
	p, ok := s.apps.proxyAt(u.Scheme + "://" + u.Host)
	if !ok {
		return signInTarget{}, notAnApp
	}
	next := u.EscapedPath()
	if !strings.HasPrefix(next, "/") || isAuthPath(u.Path) {
		next = "/"
	}
	if u.RawQuery != "" {
		next += "?" + u.RawQuery
	}
	return signInTarget{app: p, next: next, scopes: s.settings.effectiveScopes(p.settings.Load())}, ""
}

// loginURL is the login page for a target.
func (s *sessions) loginURL(t signInTarget) string {
	return s.url + PathLogin + "?next_url=" + url.QueryEscape(t.url())
}

// browserNonce returns the value this browser's form tokens are bound to, setting the cookie on its first visit.
func browserNonce(rw http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 128 {
		return c.Value
	}
	nonce := randomString()
	http.SetCookie(rw, &http.Cookie{Name: loginCookie, Value: nonce, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return nonce
}

// formToken is the CSRF token of a form about parts, for the browser holding nonce.
func (s *sessions) formToken(nonce string, parts ...string) string {
	mac := hmac.New(sha256.New, s.formKey)
	mac.Write([]byte(nonce))
	for _, part := range parts {
		mac.Write([]byte{0})
		mac.Write([]byte(part))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// validFormToken reports whether a posted form carries the token of parts for this browser.
func (s *sessions) validFormToken(r *http.Request, parts ...string) bool {
	c, err := r.Cookie(loginCookie)
	got := r.PostForm.Get("csrf_token")
	return err == nil && got != "" && hmac.Equal([]byte(got), []byte(s.formToken(c.Value, parts...)))
}

// handleLoginPage lists the model's users to sign in as, for the app next_url names.
func (s *sessions) handleLoginPage() http.HandlerFunc {
	type user struct {
		UserName, DisplayName string
		CanUse                bool
	}
	type data struct {
		App, AppURL, NextURL, Token string
		Scopes                      []string
		Users                       []user
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		raw := r.URL.Query().Get("next_url")
		target, problem := s.signInTarget(raw)
		if problem != "" {
			s.writeNoApp(rw, raw, problem)
			return
		}
		d := data{App: target.app.name, AppURL: target.app.url, NextURL: target.url(),
			Token: s.formToken(browserNonce(rw, r), PathLogin, target.url()), Scopes: target.scopes}
		for _, u := range s.dir.users() {
			d.Users = append(d.Users, user{UserName: u.UserName, DisplayName: u.DisplayName,
				CanUse: target.app.settings.Load().has(u, PermissionCanUse)})
		}
		renderPage(rw, http.StatusOK, "login", d)
	}
}

// writeNoApp answers a login page that has no app to return to, listing the apps there are.
func (s *sessions) writeNoApp(rw http.ResponseWriter, raw, problem string) {
	status, message := http.StatusBadRequest, "This page signs you in to an app of this workspace, but "+problem+"."
	if raw == "" {
		status, message = http.StatusOK, "Open an app of this workspace: it sends you here to sign in."
	}
	pg := page{Title: "Emulated Databricks workspace", Message: message}
	for _, p := range s.apps.proxies() {
		pg.Links = append(pg.Links, link{p.name, p.url + "/"})
	}
	writePage(rw, status, pg)
}

// handleSignIn takes the user picked on the login page: on to the consent page if the app has user authorization
// scopes, else back to the app.
func (s *sessions) handleSignIn() http.HandlerFunc {
	type data struct {
		App, NextURL, Token, UserName, DisplayName string
		Scopes                                     []string
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		target, who, ok := s.readSignInForm(rw, r, PathLogin)
		if !ok {
			return
		}
		scopes := target.scopes
		if len(scopes) == 0 {
			s.finishSignIn(rw, r, target, who, nil)
			return
		}
		nonce, _ := r.Cookie(loginCookie) // readSignInForm checked it
		renderPage(rw, http.StatusOK, "consent", data{App: target.app.name, NextURL: target.url(),
			UserName: who.UserName, DisplayName: who.DisplayName, Scopes: scopes,
			Token: s.formToken(nonce.Value, PathConsent, target.url(), who.UserName, strings.Join(scopes, " "))})
	}
}

// handleConsent takes the answer of the consent page. The token covers the scopes shown, so a consent given
// before the Apps API changed them is refused rather than stretched to the new ones.
func (s *sessions) handleConsent() http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		target, who, ok := s.readSignInForm(rw, r, PathConsent)
		if !ok {
			return
		}
		if r.PostForm.Get("decision") != "allow" {
			writePage(rw, http.StatusOK, page{Title: "Not signed in", Message: "You did not allow " +
				target.app.name + " to act on your behalf, so it was not opened and nothing was shared with it.",
				Links: []link{{"Back to sign-in", s.loginURL(target)}}})
			return
		}
		s.finishSignIn(rw, r, target, who, target.scopes)
	}
}

// readSignInForm reads and checks a posted login or consent form: its size, next_url, the user and the CSRF token.
// It answers the browser itself when it reports false.
func (s *sessions) readSignInForm(rw http.ResponseWriter, r *http.Request, form string) (signInTarget, principal, bool) {
	r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writePage(rw, http.StatusBadRequest, page{Title: "Bad request", Message: "The form could not be read."})
		return signInTarget{}, principal{}, false
	}
	target, problem := s.signInTarget(r.PostForm.Get("next_url"))
	if problem != "" {
		s.writeNoApp(rw, r.PostForm.Get("next_url"), problem)
		return signInTarget{}, principal{}, false
	}
	userName := r.PostForm.Get("user")
	parts := []string{form, target.url()}
	if form == PathConsent {
		parts = append(parts, userName, strings.Join(target.scopes, " "))
	}
	if !s.validFormToken(r, parts...) {
		s.logger.Warn("sign-in form refused: missing or wrong CSRF token", "form", form, "app", target.app.name)
		writePage(rw, http.StatusForbidden, page{Title: "Sign-in form expired",
			Message: "This form did not come from the sign-in page this browser was shown, or the page changed since.",
			Fix:     "Start again from the sign-in page.", Links: []link{{"Sign in to " + target.app.name, s.loginURL(target)}}})
		return signInTarget{}, principal{}, false
	}
	who, known := s.dir.user(userName)
	if !known {
		writePage(rw, http.StatusBadRequest, page{Title: "Unknown user",
			Message: "There is no user " + truncate(userName, 100) + " in this workspace.",
			Links:   []link{{"Sign in to " + target.app.name, s.loginURL(target)}}})
		return signInTarget{}, principal{}, false
	}
	return target, who, true
}

// finishSignIn sends the browser back to the app's proxy with a one-time code for the session.
func (s *sessions) finishSignIn(rw http.ResponseWriter, r *http.Request, t signInTarget, who principal, scopes []string) {
	session := browserSession{origin: t.app.url, user: who, scopes: scopes,
		clientID: t.app.settings.Load().servicePrincipal.ApplicationID, generation: s.generation(who.UserName)}
	code, ok := s.newCode(session, t.next)
	if !ok {
		writePage(rw, http.StatusServiceUnavailable, page{Title: "Try again later",
			Message: "Too many sign-ins are waiting to complete; try again in a minute."})
		return
	}
	s.logger.Info("browser sign-in", "app", t.app.name, "user", who.UserName, "scopes", strings.Join(scopes, " "))
	http.Redirect(rw, r, t.app.url+PathAuthCallback+"?code="+url.QueryEscape(code), http.StatusSeeOther)
}

// crossOriginRefused answers a form posted from another origin, which CrossOriginProtection stopped.
func crossOriginRefused() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		writePage(rw, http.StatusForbidden, page{Title: "Cross-origin request refused",
			Message: "This form may only be posted from the workspace's own sign-in page."})
	})
}

// page is a page with a message: the answers to browsers that are not a form.
type page struct {
	Title, Message, Fix string
	Links               []link
}

type link struct{ Text, URL string }

func writePage(rw http.ResponseWriter, status int, p page) { renderPage(rw, status, "message", p) }

// renderPage writes one of pageTemplates. Its headers keep the pages from being framed (the consent page must not
// be clickjacked), cached or sniffed, and allow no script.
func renderPage(rw http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		panic("emulator page " + name + ": " + err.Error()) // the templates are fixed; the tests render each
	}
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	rw.WriteHeader(status)
	_, _ = rw.Write(buf.Bytes())
}

var pageTemplates = template.Must(template.New("").Parse(`
{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · Emulated Databricks</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; color: #1b3139; }
header { color: #ff3621; font-weight: 600; letter-spacing: .02em; margin-bottom: 1.5rem; }
button { font: inherit; cursor: pointer; border: 1px solid #c7ced1; border-radius: 6px; background: #fff; padding: .6rem 1rem; }
button.user { display: block; width: 100%; text-align: left; margin: .5rem 0; }
button.primary { background: #2272b4; border-color: #2272b4; color: #fff; }
.muted { color: #5f7281; font-size: .9rem; }
code { background: #f3f5f6; padding: .1rem .3rem; border-radius: 4px; }
</style></head><body>
<header>Emulated Databricks</header>
{{end}}
{{define "bottom"}}<p class="muted">A local emulator: no passwords, nothing leaves this machine.</p>
</body></html>{{end}}

{{define "login"}}{{template "top" "Sign in"}}
<h1>Sign in to {{.App}}</h1>
<p class="muted">{{.AppURL}}</p>
<form method="post">
<input type="hidden" name="next_url" value="{{.NextURL}}">
<input type="hidden" name="csrf_token" value="{{.Token}}">
{{range .Users}}<button class="user" type="submit" name="user" value="{{.UserName}}">
<strong>{{.DisplayName}}</strong> · {{.UserName}}<br>
<span class="muted">{{if .CanUse}}can use {{$.App}}{{else}}no CAN USE on {{$.App}}: the app will refuse them (403){{end}}</span>
</button>
{{end}}</form>
{{if .Scopes}}<p class="muted">{{.App}} uses user authorization: you will be asked to allow its scopes next.</p>{{end}}
{{template "bottom"}}{{end}}

{{define "consent"}}{{template "top" "Allow access"}}
<h1>Allow {{.App}} to act on your behalf?</h1>
<p>Signed in as <strong>{{.DisplayName}}</strong> ({{.UserName}}). {{.App}} asks for these scopes; it will receive a
token of yours limited to them with each request:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
<form method="post" action="` + PathConsent + `">
<input type="hidden" name="next_url" value="{{.NextURL}}">
<input type="hidden" name="user" value="{{.UserName}}">
<input type="hidden" name="csrf_token" value="{{.Token}}">
<button class="primary" type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
{{template "bottom"}}{{end}}

{{define "logout"}}{{template "top" "Sign out"}}
<h1>Sign out of {{.App}}?</h1>
<form method="post" action="` + PathLogout + `">
<input type="hidden" name="csrf_token" value="{{.Token}}">
<button class="primary" type="submit">Sign out</button>
</form>
{{template "bottom"}}{{end}}

{{define "message"}}{{template "top" .Title}}
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Fix}}<p class="muted">{{.Fix}}</p>{{end}}
{{range .Links}}<p><a href="{{.URL}}">{{.Text}}</a></p>{{end}}
{{template "bottom"}}{{end}}
`))
