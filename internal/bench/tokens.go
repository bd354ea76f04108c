package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// clientCredentials gets an M2M token for a service principal.
func clientCredentials(ctx context.Context, host, clientID, secret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, host+workspace.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return tokenFrom(req)
}

// userLogin runs the authorization code flow with PKCE for one of the model's users, with scope (space-separated), as
// `databricks auth login` does, without a browser: the emulator approves the user login_hint names at once and its
// redirect carries the code.
func userLogin(ctx context.Context, host, user, scope string) (string, error) {
	verifier := base64.RawURLEncoding.EncodeToString([]byte(rand.Text() + rand.Text()))
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://localhost:8020"
	q := url.Values{"client_id": {workspace.CLIClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"state": {"bench"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "scope": {scope}, "login_hint": {user}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+workspace.PathAuthorize+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("authorize answered %d without a code", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {workspace.CLIClientID},
		"code": {loc.Query().Get("code")}, "code_verifier": {verifier}, "redirect_uri": {redirect}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, host+workspace.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return tokenFrom(req)
}

func tokenFrom(req *http.Request) (string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, tok.Error)
	}
	return tok.AccessToken, nil
}
