package workspace

import (
	"crypto/hmac"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Paths every app proxy answers itself, for browsers: never forwarded to the app.
const (
	// PathAuthCallback is where the workspace's login page sends the browser back with a one-time sign-in code,
	// as an OAuth redirect carries one: the proxy redeems it and sets the app's session cookie.
	PathAuthCallback = "/.auth/callback"
	// PathLogout ends the browser's session of the app: a GET shows a form, which the browser posts with its CSRF
	// token, so that no other page can sign a user out with a link or a form of its own.
	PathLogout = "/.auth/logout"
)

// signInCodeLifetime bounds how long a sign-in code waits: the browser redeems it at once, in the redirect.
const signInCodeLifetime = time.Minute

// maxSessions caps the sign-in codes and the sessions held; beyond it sign-ins are refused until some expire.
const maxSessions = 10_000

// emulatorCookiePrefix starts the name of every cookie the emulator sets. The proxy never passes them to an app, and
// drops an app's Set-Cookie for them, so an app's server never reads a session nor sets one. An app's page script can
// still set a cookie of such a name with a path of its own (not over the proxy's HttpOnly one): the proxy then takes
// the live session among the cookies of the name (liveSession), so such a cookie signs nobody out.
const emulatorCookiePrefix = "databricks-emulator-"

// sessionCookieName is the session cookie of the app proxy at origin. Each app has a host of its own (addresses.go),
// but where the proxies fall back to sharing 127.0.0.1, a browser sends a host's cookies to every port of it: the
// port in the name keeps them apart there. The session itself is bound to the origin too, so a cookie replayed at
// another proxy is refused.
func sessionCookieName(origin string) string {
	_, port, _ := strings.Cut(strings.TrimPrefix(origin, "http://"), ":")
	return emulatorCookiePrefix + "session-" + port
}

// browserSession is a person signed in to one app through the login page.
type browserSession struct {
	origin   string    // the app proxy's URL: the only one the session works at
	user     principal // who signed in
	clientID string    // the app's OAuth client, named in the forwarded tokens
	scopes   []string  // the user authorization scopes consented to, or none for an app without them
	grant    string    // names the forwarded tokens: ending the session revokes them
	// generation is the user's token generation when the login page issued the sign-in code: a revocation since
	// voids the code, and the forwarded tokens carry it, as a user token carries its own.
	generation int64
	expires    time.Time
}

// signInCode is what a one-time code stands for until the app's proxy redeems it.
type signInCode struct {
	browserSession
	next    string // the path and query to return to, on origin
	expires time.Time
	spent   bool   // redeemed once; kept until it expires so a replay is recognised
	session string // the session its redemption opened
}

// sessions holds the sign-in codes and the browser sessions of every app proxy, in memory only, and serves the
// workspace's sign-in pages (login.go) that open them.
type sessions struct {
	mu       sync.Mutex
	codes    map[string]signInCode
	byID     map[string]browserSession
	lifetime time.Duration      // a session lasts as long as a user's access token
	revoke   func(grant string) // refuses the forwarded tokens of an ended session
	formKey  []byte             // signs the login forms' CSRF tokens (login.go)
	now      func() time.Time

	// What the sign-in pages need of the rest of the workspace; Start sets them before it serves.
	url        string // the workspace's, where the login page is
	dir        *directory
	settings   *workspaceSettings
	apps       signInApps
	generation func(user string) int64 // a user's token generation (grants.go)
	logger     *slog.Logger
}

// signInApps are the apps a browser signs in to: the workspace's.
type signInApps interface {
	proxyAt(origin string) (*appProxy, bool) // the proxy serving origin ("http://host:port")
	proxies() []*appProxy                    // every app's, in creation order
}

func newSessions(lifetime time.Duration, revoke func(grant string)) *sessions {
	return &sessions{codes: map[string]signInCode{}, byID: map[string]browserSession{}, lifetime: lifetime,
		revoke: revoke, formKey: []byte(randomString()), now: time.Now}
}

// setClock replaces the clock, for tests of expiry.
func (s *sessions) setClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// newCode stores a sign-in for s.origin under a new one-time code, or reports false when too many are held.
func (s *sessions) newCode(session browserSession, next string) (string, bool) {
	code := randomString()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	if len(s.codes) >= maxSessions {
		return "", false
	}
	s.codes[code] = signInCode{browserSession: session, next: next, expires: s.now().Add(signInCodeLifetime)}
	return code, true
}

// opened is a session a sign-in code opened, and where the browser goes next.
type opened struct {
	id      string
	session browserSession
	next    string
}

// redeem spends a code at the proxy of origin and opens its session. A code works once, at the origin it was issued
// for, within its lifetime, unless its user's tokens were revoked since (revokedSince is grants.revokedSince): any
// use spends it, and a second one ends the session the first opened (RFC 6749 section 4.1.2 asks the same of
// authorization codes). refusal says why it opened none, in words safe to show.
//
// RevokeTokens starts the user's new generation, then ends their sessions (endUser, under mu as redeem): a code
// redeemed once the generation began is refused, and a session opened before is ended.
func (s *sessions) redeem(code, origin string, revokedSince func(subject string, generation int64) bool) (o opened, refusal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.codes[code]
	switch {
	case !found:
		return opened{}, "the sign-in code is unknown or expired"
	case c.spent:
		s.endLocked(c.session)
		return opened{}, "the sign-in code was used twice, so the session it opened was ended"
	}
	c.spent = true
	s.codes[code] = c
	switch {
	case s.now().After(c.expires):
		return opened{}, "the sign-in code expired"
	case c.origin != origin:
		return opened{}, "the sign-in code was issued for another app"
	case revokedSince(c.user.UserName, c.generation):
		return opened{}, "the sign-in code was revoked, with every token of its user, before it was used"
	case len(s.byID) >= maxSessions:
		s.sweepLocked()
		if len(s.byID) >= maxSessions {
			return opened{}, "too many browser sessions are open; try again when some expire"
		}
	}
	o = opened{id: randomString(), session: c.browserSession, next: c.next}
	o.session.grant = randomString()
	o.session.expires = s.now().Add(s.lifetime)
	s.byID[o.id] = o.session
	c.session = o.id
	s.codes[code] = c
	return o, ""
}

// session returns the live session id names at origin.
func (s *sessions) session(id, origin string) (browserSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	session, ok := s.byID[id]
	if ok && s.now().After(session.expires) {
		delete(s.byID, id)
		return browserSession{}, false
	}
	return session, ok && session.origin == origin
}

// end closes the session id names at origin, if any, and reports whether there was one.
func (s *sessions) end(id, origin string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if session, ok := s.byID[id]; ok && session.origin == origin {
		s.endLocked(id)
		return true
	}
	return false
}

// endOrigin closes every session at origin: its app was deleted, and a new app on the same port must not inherit them.
func (s *sessions) endOrigin(origin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, session := range s.byID {
		if session.origin == origin {
			s.endLocked(id)
		}
	}
}

// endUser closes every session of the user subject names, at every app, and returns how many it closed.
func (s *sessions) endUser(subject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, session := range s.byID {
		if session.user.UserName == subject {
			s.endLocked(id)
			n++
		}
	}
	return n
}

// endLocked closes a session and revokes the tokens the proxy forwarded for it.
func (s *sessions) endLocked(id string) {
	if session, ok := s.byID[id]; ok {
		delete(s.byID, id)
		s.revoke(session.grant)
	}
}

// sweepLocked forgets expired codes and sessions. It runs when the store is about to grow, so it costs nothing
// while it does not.
func (s *sessions) sweepLocked() {
	now := s.now()
	forgetExpired(s.codes, now, func(c signInCode) time.Time { return c.expires })
	forgetExpired(s.byID, now, func(b browserSession) time.Time { return b.expires })
}

func isAuthPath(path string) bool { return path == PathAuthCallback || path == PathLogout }

// serveAuth answers the proxy's own browser paths: the sign-in callback and logout.
func (p *appProxy) serveAuth(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		rw.Header().Set("Allow", "GET, HEAD, POST")
		writePage(rw, http.StatusMethodNotAllowed, page{Title: "Method not allowed",
			Message: r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	if r.URL.Path == PathLogout {
		p.logout(rw, r)
		return
	}
	o, refusal := p.apps.sessions.redeem(r.URL.Query().Get("code"), p.url, p.apps.auth.grants.revokedSince)
	if refusal != "" {
		p.apps.logger.Warn("sign-in code refused", "app", p.name, "reason", refusal)
		writePage(rw, http.StatusBadRequest, page{Title: "Sign-in failed", Message: "Signing in to " + p.name +
			" failed: " + refusal + ".", Links: []link{{"Sign in again", p.url + "/"}}})
		return
	}
	// The cookie lasts as long as the session; the proxy checks the expiry itself, whatever the browser keeps.
	http.SetCookie(rw, &http.Cookie{Name: sessionCookieName(p.url), Value: o.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(p.apps.sessions.lifetime.Seconds())})
	p.apps.logger.Info("browser session opened", "app", p.name, "user", o.session.user.UserName,
		"expires", o.session.expires.UTC().Format(time.RFC3339))
	rw.Header().Set("Cache-Control", "no-store")
	http.Redirect(rw, r, p.url+o.next, http.StatusFound)
}

// logout answers a GET with the sign-out form, and its POST, from this app's own page with the form's CSRF token,
// by ending the browser's session of this app and revoking the tokens the proxy forwarded for it.
func (p *appProxy) logout(rw http.ResponseWriter, r *http.Request) {
	session, _, _, _ := p.liveSession(r)
	signIn := []link{{"Sign in again", p.url + "/"}}
	if session == "" {
		clearSessionCookie(rw, p.url)
		writePage(rw, http.StatusOK, page{Title: "Signed out", Message: "You are signed out of " + p.name + ".", Links: signIn})
		return
	}
	token := p.apps.sessions.formToken(session, PathLogout, p.url)
	if r.Method != http.MethodPost {
		renderPage(rw, http.StatusOK, "logout", struct{ App, Token string }{p.name, token})
		return
	}
	r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
	err := sameOriginOnly.Check(r)
	if err == nil {
		err = r.ParseForm()
	}
	if got := r.PostForm.Get("csrf_token"); err != nil || got == "" || !hmac.Equal([]byte(got), []byte(token)) {
		p.apps.logger.Warn("logout refused: posted from another origin or without this session's CSRF token", "app", p.name)
		writePage(rw, http.StatusForbidden, page{Title: "Sign-out refused",
			Message: "This sign-out did not come from " + p.name + "'s own sign-out page.",
			Links:   []link{{"Sign out of " + p.name, p.url + PathLogout}}})
		return
	}
	if p.apps.sessions.end(session, p.url) {
		p.apps.logger.Info("browser session ended", "app", p.name)
	}
	clearSessionCookie(rw, p.url)
	writePage(rw, http.StatusOK, page{Title: "Signed out", Message: "You are signed out of " + p.name + ".", Links: signIn})
}

// liveSession finds the browser's session of this app among the cookies of its name: sent reports whether any came,
// and live whether one is a live session of this app, whose id and session it returns. Not only the first: a page's
// script may set a cookie of the same name with a longer path, which the browser sends before the proxy's.
func (p *appProxy) liveSession(r *http.Request) (id string, session browserSession, sent, live bool) {
	for _, c := range r.CookiesNamed(sessionCookieName(p.url)) {
		sent = true
		if session, live = p.apps.sessions.session(c.Value, p.url); live {
			return c.Value, session, true, true
		}
	}
	return "", browserSession{}, sent, false
}

func clearSessionCookie(rw http.ResponseWriter, origin string) {
	http.SetCookie(rw, &http.Cookie{Name: sessionCookieName(origin), Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// browserAuth is the proxy's check of a browser: its session cookie, as authenticate is of a bearer token. A request
// to /api/ that carries an Authorization header, or no session cookie, is left to authenticate (res and answered
// both zero). Any other path needs a session: without a live one it is sent to the login page (answered). With one,
// res speaks for the session's user as a user token with the consented scopes would, so the proxy forwards the
// same headers and the same downscoped token.
func (p *appProxy) browserAuth(rw http.ResponseWriter, r *http.Request) (res *authResult, answered bool) {
	api := isAPIPath(r.URL.Path)
	if api && len(r.Header.Values("Authorization")) > 0 {
		return nil, false
	}
	_, session, sent, ok := p.liveSession(r)
	if !sent {
		if api {
			return nil, false
		}
		p.redirectToLogin(rw, r)
		return nil, true
	}
	if !ok {
		clearSessionCookie(rw, p.url)
		if api {
			writeUnauthorized(rw, "Your browser session of app "+p.name+" expired or was ended.", false)
			return nil, true
		}
		p.redirectToLogin(rw, r)
		return nil, true
	}
	if !api && len(coversScopes(session.scopes, p.apps.settings.effectiveScopes(p.settings.Load()))) > 0 {
		// The app asks for scopes the user has not consented to (the Apps API changed them): ask again.
		p.redirectToLogin(rw, r)
		return nil, true
	}
	return &authResult{principal: session.user, session: true, claims: accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: session.user.UserName, ExpiresAt: jwt.NewNumericDate(session.expires)},
		ClientID:         session.clientID,
		Scope:            strings.Join(session.scopes, " "),
		Grant:            session.grant,
		Generation:       session.generation,
	}}, false
}

// refuse answers a refusal of the proxy's checks: JSON in the Databricks shape on /api/, where clients parse it, and
// a page saying the same for a browser on any other path.
func (p *appProxy) refuse(rw http.ResponseWriter, r *http.Request, e *jsonhttp.Error) {
	if isAPIPath(r.URL.Path) {
		jsonhttp.WriteError(rw, e)
		return
	}
	title := http.StatusText(e.Status)
	if e.Status == http.StatusForbidden {
		title = "No access to " + p.name
	}
	writePage(rw, e.Status, page{Title: title, Message: e.Message, Fix: e.Fix,
		Links: []link{{"Sign in as someone else", p.url + PathLogout}}})
}

// sameOriginOnly refuses a request a browser sent from another origin's page: its Sec-Fetch-Site, or failing that its
// Origin, must be the request's own. A request that carries neither is no browser's, and passes.
var sameOriginOnly = http.NewCrossOriginProtection()

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// withoutEmulatorSetCookies removes from an app's response every Set-Cookie for a cookie of the emulator's: an app
// may not sign its users in or out of the proxy, or fix their session.
func withoutEmulatorSetCookies(h http.Header) {
	values := h.Values("Set-Cookie")
	if len(values) == 0 {
		return
	}
	kept := values[:0:0]
	for _, v := range values {
		name, value, _ := strings.Cut(strings.TrimSpace(v), "=")
		if name = strings.TrimSpace(name); name == "" {
			name = strings.TrimSpace(value) // a nameless cookie ("=NAME=VALUE"), which some clients read as NAME
		}
		if !strings.HasPrefix(name, emulatorCookiePrefix) {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(values) {
		return
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
}

// withoutEmulatorCookies removes the emulator's own cookies from the Cookie headers h holds, keeping the app's.
func withoutEmulatorCookies(h http.Header) {
	values := h.Values("Cookie")
	if len(values) == 0 {
		return
	}
	var kept []string
	for _, v := range values {
		for _, c := range strings.Split(v, ";") {
			if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); name != "" && !strings.HasPrefix(name, emulatorCookiePrefix) {
				kept = append(kept, strings.TrimSpace(c))
			}
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}
