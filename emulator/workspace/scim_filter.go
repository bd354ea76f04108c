package workspace

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// scimMatcher reports whether a resource, by its attributes (lower-cased names, every value as a string), matches.
type scimMatcher func(attrs map[string][]string) bool

// maxSCIMFilter bounds a filter's length, and so the parser's depth.
const maxSCIMFilter = 1 << 10

// parseSCIMFilter reads a SCIM filter (RFC 7644 section 3.4.2.2) as Databricks supports it: attribute comparisons
// with eq, ne, co, sw, ew, gt, ge, lt, le and pr, joined by and and or, negated with not (…), grouped in parentheses.
// Attribute names and string comparisons ignore letter case. "" matches everything.
func parseSCIMFilter(filter string) (scimMatcher, error) {
	if strings.TrimSpace(filter) == "" {
		return func(map[string][]string) bool { return true }, nil
	}
	if len(filter) > maxSCIMFilter {
		return nil, fmt.Errorf("longer than %d bytes", maxSCIMFilter)
	}
	tokens, err := scimTokens(filter)
	if err != nil {
		return nil, err
	}
	p := &scimParser{tokens: tokens}
	m, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.tokens) {
		return nil, fmt.Errorf("unexpected %q; want and, or or the end", p.tokens[p.pos].text)
	}
	return m, nil
}

type scimToken struct {
	text   string
	quoted bool // a string literal, already unquoted
}

func scimTokens(s string) ([]scimToken, error) {
	var out []scimToken
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')':
			out = append(out, scimToken{text: string(c)})
			i++
		case c == '"':
			end := i + 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, errors.New("a string is not closed")
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:end+1]), &v); err != nil {
				return nil, fmt.Errorf("bad string %s", s[i:end+1])
			}
			out = append(out, scimToken{text: v, quoted: true})
			i = end + 1
		default:
			end := i
			for end < len(s) && !unicode.IsSpace(rune(s[end])) && s[end] != '(' && s[end] != ')' && s[end] != '"' {
				end++
			}
			out = append(out, scimToken{text: s[i:end]})
			i = end
		}
	}
	return out, nil
}

type scimParser struct {
	tokens []scimToken
	pos    int
}

func (p *scimParser) peek(word string) bool {
	return p.pos < len(p.tokens) && !p.tokens[p.pos].quoted && strings.EqualFold(p.tokens[p.pos].text, word)
}

func (p *scimParser) or() (scimMatcher, error) {
	left, err := p.and()
	for err == nil && p.peek("or") {
		p.pos++
		var right scimMatcher
		if right, err = p.and(); err == nil {
			l := left
			left = func(a map[string][]string) bool { return l(a) || right(a) }
		}
	}
	return left, err
}

func (p *scimParser) and() (scimMatcher, error) {
	left, err := p.factor()
	for err == nil && p.peek("and") {
		p.pos++
		var right scimMatcher
		if right, err = p.factor(); err == nil {
			l := left
			left = func(a map[string][]string) bool { return l(a) && right(a) }
		}
	}
	return left, err
}

func (p *scimParser) factor() (scimMatcher, error) {
	if p.peek("not") {
		p.pos++
		if !p.peek("(") {
			return nil, errors.New("not takes a filter in parentheses")
		}
		inner, err := p.factor()
		if err != nil {
			return nil, err
		}
		return func(a map[string][]string) bool { return !inner(a) }, nil
	}
	if p.peek("(") {
		p.pos++
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			return nil, errors.New("a parenthesis is not closed")
		}
		p.pos++
		return inner, nil
	}
	if p.pos+1 >= len(p.tokens) {
		return nil, errors.New("want an attribute, an operator and a value, such as userName eq \"dev@example.com\"")
	}
	attr, op := strings.ToLower(p.tokens[p.pos].text), strings.ToLower(p.tokens[p.pos+1].text)
	p.pos += 2
	if op == "pr" {
		return func(a map[string][]string) bool { return len(a[attr]) > 0 }, nil
	}
	if p.pos >= len(p.tokens) {
		return nil, fmt.Errorf("%s %s needs a value", attr, op)
	}
	value := p.tokens[p.pos]
	p.pos++
	want := strings.ToLower(value.text)
	if !value.quoted && want == "null" {
		want = ""
	}
	compare, ok := scimOperators[op]
	if !ok {
		return nil, fmt.Errorf("unknown operator %q: want eq, ne, co, sw, ew, gt, ge, lt, le or pr", op)
	}
	if op == "ne" {
		return func(a map[string][]string) bool {
			for _, v := range a[attr] {
				if strings.ToLower(v) == want {
					return false
				}
			}
			return true
		}, nil
	}
	return func(a map[string][]string) bool {
		for _, v := range a[attr] {
			if compare(strings.ToLower(v), want) {
				return true
			}
		}
		return false
	}, nil
}

var scimOperators = map[string]func(have, want string) bool{
	"eq": func(h, w string) bool { return h == w },
	"ne": nil, // its own case: true when no value equals
	"co": strings.Contains,
	"sw": strings.HasPrefix,
	"ew": strings.HasSuffix,
	"gt": func(h, w string) bool { return h > w },
	"ge": func(h, w string) bool { return h >= w },
	"lt": func(h, w string) bool { return h < w },
	"le": func(h, w string) bool { return h <= w },
}
