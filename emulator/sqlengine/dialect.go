package sqlengine

import (
	"fmt"
	"strings"
)

// Translate rewrites what Databricks SQL spells differently from the engine, outside string literals and comments:
// a named parameter marker :name becomes marker(name) (the engine's $name, or a CAST of it), and a backquoted
// identifier `a b` becomes "a b". It returns the names of the markers in order of first use. Positional markers (?)
// are refused, as the Statement Execution API refuses them.
func Translate(sql string, marker func(name string) string) (string, []string, error) {
	var b strings.Builder
	b.Grow(len(sql))
	var names []string
	seen := map[string]bool{}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			end := closing(sql, i, c)
			if end < 0 {
				return "", nil, &Error{Message: fmt.Sprintf("[UNCLOSED_QUOTE] the %c at position %d is never closed", c, i)}
			}
			b.WriteString(sql[i : end+1])
			i = end + 1
		case c == '`':
			end := closing(sql, i, '`')
			if end < 0 {
				return "", nil, &Error{Message: fmt.Sprintf("[UNCLOSED_QUOTE] the ` at position %d is never closed", i)}
			}
			ident := strings.ReplaceAll(sql[i+1:end], "``", "`")
			b.WriteString(`"` + strings.ReplaceAll(ident, `"`, `""`) + `"`)
			i = end + 1
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			b.WriteString(sql[i : i+end])
			i += end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return "", nil, &Error{Message: "[UNCLOSED_COMMENT] a /* comment is never closed"}
			}
			b.WriteString(sql[i : i+2+end+2])
			i += 2 + end + 2
		case c == ':' && strings.HasPrefix(sql[i:], "::"):
			b.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(sql) && isIdentStart(sql[i+1]):
			j := i + 1
			for j < len(sql) && isIdentPart(sql[j]) {
				j++
			}
			name := sql[i+1 : j]
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
			b.WriteString(marker(name))
			i = j
		case c == '?':
			return "", nil, &Error{Message: "[UNSUPPORTED_FEATURE] positional parameter markers (?) are not supported " +
				"by the Statement Execution API: use named markers such as :region"}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), names, nil
}

// closing finds the quote that closes the one at sql[open], a doubled quote standing for itself; -1 if none.
func closing(sql string, open int, quote byte) int {
	for i := open + 1; i < len(sql); i++ {
		if sql[i] != quote {
			continue
		}
		if i+1 < len(sql) && sql[i+1] == quote {
			i++
			continue
		}
		return i
	}
	return -1
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }
