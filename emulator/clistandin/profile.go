package clistandin

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// readProfile returns the key/value pairs of one section of a .databrickscfg (an INI file). It reads the little
// the stand-in needs and ignores the rest.
func readProfile(path, profile string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the CLI config: %w", err)
	}
	defer f.Close()
	var section string
	found := false
	values := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
			found = found || section == profile
		case section == profile:
			if k, v, ok := strings.Cut(line, "="); ok {
				values[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the CLI config %s: %w", path, err)
	}
	if !found {
		return nil, fmt.Errorf("no profile %q in %s", profile, path)
	}
	return values, nil
}
