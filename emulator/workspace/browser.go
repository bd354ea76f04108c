package workspace

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// HeadlessBrowser stands in for the user's browser in a U2M login against the emulator: pass it to
// u2m.WithBrowser. It fetches the authorize URL in the background (the SDK waits for the redirect only after the
// browser call returns) and follows the redirect to the SDK's callback. If the workspace refuses the request
// without redirecting, nobody would ever call back, so it reports that through fail (for example the cancel
// function of the login's context).
func HeadlessBrowser(fail func(error)) func(authorizeURL string) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return func(authorizeURL string) error {
		go func() {
			resp, err := client.Get(authorizeURL)
			if err != nil {
				fail(fmt.Errorf("open the authorize URL: %w", err))
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 400 && resp.Request.URL.Path == PathAuthorize {
				var oauthErr struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oauthErr)
				fail(fmt.Errorf("the workspace refused the login: %s: %s", oauthErr.Error, oauthErr.Description))
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		}()
		return nil
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now, for servers that take a port number rather than a
// listener (the SDK's U2M callback, an app's DATABRICKS_APP_PORT). Another caller may be given it too before it is
// used: the apps a workspace starts get theirs through portReservations (ports.go), which never gives one out twice.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SignIn plays a person opening pageURL, an app proxy's page, in a browser: on the emulator's login page it picks
// userName, on the consent page (for an app with user authorization scopes) it allows them, and it returns the
// response of the page it came back to, body unread. client must have a cookie jar (net/http/cookiejar) and follow
// redirects, as a browser does; it keeps the app's session cookie for the requests that follow. A browser that is
// signed in already goes straight to the page.
func SignIn(ctx context.Context, client *http.Client, pageURL, userName string) (*http.Response, error) {
	if client.Jar == nil {
		return nil, fmt.Errorf("sign in to %s: the client needs a cookie jar to keep the session", pageURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return nil, fmt.Errorf("sign in to %s: %w", pageURL, err)
	}
	resp, err := client.Do(req)
	// At most two forms stand between the browser and the page: the login page's, then the consent page's.
	for range 2 {
		if err != nil || !onSignInForm(resp) {
			break
		}
		resp, err = submitSignInForm(ctx, client, resp, userName)
	}
	if err != nil {
		return nil, fmt.Errorf("sign in to %s as %s: %w", pageURL, userName, err)
	}
	return resp, nil
}

// onSignInForm reports whether resp is the emulator's login or consent page, rather than the app's page or a refusal.
func onSignInForm(resp *http.Response) bool {
	path := resp.Request.URL.Path
	return resp.StatusCode == http.StatusOK && (path == PathLogin || path == PathConsent) &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")
}

// submitSignInForm answers the form of a login page (as userName) or consent page (allow), as a person would.
func submitSignInForm(ctx context.Context, client *http.Client, resp *http.Response, userName string) (*http.Response, error) {
	f, err := readForm(resp)
	if err != nil {
		return nil, err
	}
	switch {
	case f.buttons["user"] != nil:
		if !slices.Contains(f.buttons["user"], userName) {
			return nil, fmt.Errorf("the login page lists no user %q (it lists %s)", userName, strings.Join(f.buttons["user"], ", "))
		}
		f.fields.Set("user", userName)
	case f.buttons["decision"] != nil:
		f.fields.Set("decision", "allow")
	default:
		return nil, fmt.Errorf("%s has no sign-in form to answer", resp.Request.URL.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.action.String(), strings.NewReader(f.fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return client.Do(req)
}

// form is the first form of a page: where it posts, its hidden fields and the values of its submit buttons.
type form struct {
	action  *url.URL
	fields  url.Values
	buttons map[string][]string
}

// readForm reads resp's body, closing it, and finds its first form.
func readForm(resp *http.Response) (form, error) {
	defer resp.Body.Close()
	f := form{action: resp.Request.URL, fields: url.Values{}, buttons: map[string][]string{}}
	z := html.NewTokenizer(io.LimitReader(resp.Body, 1<<20))
	inForm := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !inForm {
				return form{}, fmt.Errorf("%s has no form", resp.Request.URL.Path)
			}
			return f, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			attr := func(name string) string {
				for _, a := range t.Attr {
					if a.Key == name {
						return a.Val
					}
				}
				return ""
			}
			switch {
			case t.Data == "form" && !inForm:
				inForm = true
				if action := attr("action"); action != "" {
					u, err := resp.Request.URL.Parse(action)
					if err != nil {
						return form{}, fmt.Errorf("the form's action %q: %w", action, err)
					}
					f.action = u
				}
			case t.Data == "input" && inForm && attr("type") == "hidden":
				f.fields.Add(attr("name"), attr("value"))
			case t.Data == "button" && inForm && attr("name") != "":
				f.buttons[attr("name")] = append(f.buttons[attr("name")], attr("value"))
			}
		case html.EndTagToken:
			if inForm && z.Token().Data == "form" {
				return f, nil
			}
		}
	}
}
