// Package browser plays the user's browser against the Databricks Apps emulator, for programs and tests that have
// no person at hand: a U2M login's browser (Headless, for databricks-sdk-go's u2m.WithBrowser) and a person signing
// in to an app's page (SignIn). It knows the emulator's pages by their forms, not by their paths, so that it stands
// apart from the workspace it drives.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// maxPage bounds what the browser reads of a page.
const maxPage = 1 << 20

// Headless stands in for the user's browser in a U2M login against the emulator: pass it to u2m.WithBrowser. It
// fetches the authorize URL in the background (the SDK waits for the redirect only after the browser call returns)
// and follows the redirect to the SDK's callback. If the workspace refuses the request without redirecting, nobody
// would ever call back, so it reports that through fail (for example the cancel function of the login's context).
func Headless(fail func(error)) func(authorizeURL string) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return func(authorizeURL string) error {
		authorize, err := url.Parse(authorizeURL)
		if err != nil {
			return fmt.Errorf("the authorize URL: %w", err)
		}
		go func() {
			resp, err := client.Get(authorizeURL)
			if err != nil {
				fail(fmt.Errorf("open the authorize URL: %w", err))
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 400 && resp.Request.URL.Host == authorize.Host && resp.Request.URL.Path == authorize.Path {
				var oauthErr struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oauthErr)
				fail(fmt.Errorf("the workspace refused the login: %s: %s", oauthErr.Error, oauthErr.Description))
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPage))
		}()
		return nil
	}
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
		if err != nil {
			break
		}
		var f Form
		f, err = signInForm(resp, req.URL.Host)
		if err != nil || f.Action == nil {
			break
		}
		resp, err = submit(ctx, client, f, userName)
	}
	if err != nil {
		return nil, fmt.Errorf("sign in to %s as %s: %w", pageURL, userName, err)
	}
	return resp, nil
}

// signInForm returns the form of resp when it is the emulator's login or consent page: an HTML page served by
// another host than the app's (the workspace's), whose form has a user or a decision button. Otherwise it returns
// no form and leaves resp as it came, its whole body still to read.
func signInForm(resp *http.Response, appHost string) (Form, error) {
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Host == appHost ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return Form{}, nil
	}
	body := resp.Body
	page, err := io.ReadAll(io.LimitReader(body, maxPage))
	if err != nil {
		body.Close()
		return Form{}, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(page))
	f, err := ReadForm(resp)
	if err != nil || (f.Buttons["user"] == nil && f.Buttons["decision"] == nil) {
		// Not a sign-in page: what was read first, then the rest, as it came.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(page), body), body}
		return Form{}, nil
	}
	body.Close()
	return f, nil
}

// submit answers a login page's form (as userName) or a consent page's (allow), as a person would.
func submit(ctx context.Context, client *http.Client, f Form, userName string) (*http.Response, error) {
	if users := f.Buttons["user"]; users != nil {
		if !slices.Contains(users, userName) {
			return nil, fmt.Errorf("the login page lists no user %q (it lists %s)", userName, strings.Join(users, ", "))
		}
		f.Fields.Set("user", userName)
	} else {
		f.Fields.Set("decision", "allow")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.Action.String(), strings.NewReader(f.Fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return client.Do(req)
}

// Form is the first form of a page: where it posts, its hidden fields and the values of its submit buttons by name.
type Form struct {
	Action  *url.URL // resolved against the page's URL
	Fields  url.Values
	Buttons map[string][]string
}

// ReadForm reads resp's body, closing it, and finds its first form.
func ReadForm(resp *http.Response) (Form, error) {
	defer resp.Body.Close()
	f := Form{Action: resp.Request.URL, Fields: url.Values{}, Buttons: map[string][]string{}}
	z := html.NewTokenizer(io.LimitReader(resp.Body, maxPage))
	inForm := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !inForm {
				return Form{}, fmt.Errorf("%s has no form", resp.Request.URL.Path)
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
						return Form{}, fmt.Errorf("the form's action %q: %w", action, err)
					}
					f.Action = u
				}
			case t.Data == "input" && inForm && attr("type") == "hidden":
				f.Fields.Add(attr("name"), attr("value"))
			case t.Data == "button" && inForm && attr("name") != "":
				f.Buttons[attr("name")] = append(f.Buttons[attr("name")], attr("value"))
			}
		case html.EndTagToken:
			if inForm && z.Token().Data == "form" {
				return f, nil
			}
		}
	}
}
