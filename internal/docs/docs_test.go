package docs_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// root is the repository's root, from this package's folder.
const root = "../.."

// maxREADMELines is what a newcomer reads in ten minutes, first screen included.
const maxREADMELines = 250

// page is one Markdown file: its path from the root and its text.
type page struct {
	path string
	text string
}

// pages reads README.md and every docs/*.md.
func pages(t *testing.T) []page {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	paths = append([]string{filepath.Join(root, "README.md")}, paths...)
	var out []page
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		rel, err := filepath.Rel(root, p)
		require.NoError(t, err)
		out = append(out, page{path: filepath.ToSlash(rel), text: string(data)})
	}
	require.Greater(t, len(out), 1, "README.md and docs/*.md")
	return out
}

// block is a fenced code block: its language (the word after the fence) and its text.
type block struct {
	lang, text string
	line       int
}

var fence = regexp.MustCompile("(?m)^```([a-z]*)\n((?s:.*?))^```\\s*$")

func blocks(p page) []block {
	var out []block
	for _, m := range fence.FindAllStringSubmatchIndex(p.text, -1) {
		out = append(out, block{lang: p.text[m[2]:m[3]], text: p.text[m[4]:m[5]],
			line: strings.Count(p.text[:m[0]], "\n") + 1})
	}
	return out
}

// prose is the page without its code blocks, where links and headings live.
func prose(p page) string { return fence.ReplaceAllString(p.text, "") }

func TestREADMEIsShort(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	lines := bytes.Count(data, []byte("\n"))
	assert.LessOrEqual(t, lines, maxREADMELines, "README.md: move detail into a docs/ page of one subject and link it")
}

// Words from other documents: the documentation page is named by its title, "Connect to a Databricks app using
// token authentication", and nothing refers to a version of it or to a workshop the reader has not seen. Spelt in
// pieces so this file does not hold them.
var outsideWords = []string{"seed" + " page", "azure" + " edition", "the workshop's" + " fix", "seeds" + "/"}

func TestNoWordsFromOutsideTheProject(t *testing.T) {
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "build", "node_modules", "__pycache__", ".pytest_cache":
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil || bytes.IndexByte(data, 0) >= 0 { // binary files say nothing to a reader
			return err
		}
		checked++
		lower := strings.ToLower(string(data))
		for _, w := range outsideWords {
			assert.NotContains(t, lower, w, "%s: name the documentation page by its title instead", path)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Positive(t, checked)
}

// A command line that runs bash's builtin `caller` (which prints nothing and exits 1) instead of this project's
// caller, callapp: at the start of a line or after a prompt, a pipe, &&, ;, $( or a backtick.
var bareCaller = regexp.MustCompile("(^|\\$ |[|;&(`]\\s*)caller\\s+[-a-z]")

func TestNoCommandRunsTheCallerBuiltin(t *testing.T) {
	for _, p := range pages(t) {
		for i, line := range strings.Split(p.text, "\n") {
			assert.NotRegexp(t, bareCaller, line, "%s:%d: `caller` is a bash builtin: write callapp", p.path, i+1)
		}
	}
}

// Every YAML and JSON block parses, and a block that is an emulator model loads as the emulator loads one
// (unknown fields refused, every reference resolved): readers copy them.
func TestShownConfigurationsLoad(t *testing.T) {
	shown := 0
	for _, p := range pages(t) {
		for _, b := range blocks(p) {
			where := p.path + ":" + strconv.Itoa(b.line)
			switch b.lang {
			case "json":
				shown++
				assert.True(t, json.Valid([]byte(b.text)), "%s: not valid JSON", where)
			case "yaml":
				shown++
				var doc map[string]any
				if !assert.NoError(t, yaml.Unmarshal([]byte(b.text), &doc), "%s", where) {
					continue
				}
				if isModel(doc) {
					_, err := workspace.ParseConfig([]byte(b.text), "shown.yaml")
					assert.NoError(t, err, "%s: the emulator refuses this model", where)
				}
			}
		}
	}
	assert.Positive(t, shown, "the docs show configurations; this test must find them")
}

// isModel tells an emulator model from other YAML (an app.yaml, a bundle).
func isModel(doc map[string]any) bool {
	_, users := doc["users"]
	_, apps := doc["apps"]
	_, sps := doc["service_principals"]
	return users || (apps && sps)
}

var (
	link    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// Every relative link leads to a file of the repository, and every #anchor to a heading of its page.
func TestLinksLeadSomewhere(t *testing.T) {
	all := pages(t)
	anchors := map[string]map[string]bool{}
	for _, p := range all {
		anchors[p.path] = map[string]bool{}
		for _, m := range heading.FindAllStringSubmatch(prose(p), -1) {
			anchors[p.path][slug(m[1])] = true
		}
	}
	checked := 0
	for _, p := range all {
		for _, m := range link.FindAllStringSubmatch(prose(p), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			resolved := p.path
			if file != "" {
				resolved = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(p.path), file)))
				_, err := os.Stat(filepath.Join(root, resolved))
				if !assert.NoError(t, err, "%s: link %s", p.path, target) {
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(resolved, ".md") {
				assert.True(t, anchors[resolved][anchor], "%s: link %s: no heading with that anchor in %s",
					p.path, target, resolved)
			}
		}
	}
	assert.Positive(t, checked)
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped but for - and _, spaces to hyphens.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127 && isLetter(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isLetter(r rune) bool { return strings.ToUpper(string(r)) != strings.ToLower(string(r)) }

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"The caller as a Databricks App":              "the-caller-as-a-databricks-app",
		"Packaging and the 10 MB limit":               "packaging-and-the-10-mb-limit",
		"On behalf of the user: `/api/me`":            "on-behalf-of-the-user-apime",
		"Test it under the emulator, in any language": "test-it-under-the-emulator-in-any-language",
		"The caller: `callapp`":                       "the-caller-callapp",
	} {
		assert.Equal(t, want, slug(heading), heading)
	}
}
