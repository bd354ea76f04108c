package databrickscli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
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

// writeProfile sets host (when given) and scopes in profile's section of the .databrickscfg at path, adding the
// section when there is none, and returns the profile's host. An empty scopes removes the key: the default
// all-apis. The file is replaced in one rename, owner-only.
func writeProfile(path, profile, host, scopes string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("read the CLI config: %w", err)
	}
	var out []string
	var section, foundHost string
	found := false
	flush := func() {
		if section != profile {
			return
		}
		if host != "" {
			out = append(out, "host = "+host)
			foundHost = host
		}
		if scopes != "" {
			out = append(out, "scopes = "+scopes)
		}
	}
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]") {
			flush()
			section = strings.TrimSpace(trimmed[1 : len(trimmed)-1])
			found = found || section == profile
			out = append(out, line)
			continue
		}
		if section == profile {
			k, v, _ := strings.Cut(trimmed, "=")
			switch strings.TrimSpace(k) {
			case "scopes":
				continue
			case "host":
				if host != "" {
					continue
				}
				foundHost = strings.TrimRight(strings.TrimSpace(v), "/")
			}
		}
		out = append(out, line)
	}
	flush()
	if !found {
		if host == "" {
			return "", fmt.Errorf("no profile %q in %s: pass --host to create it", profile, path)
		}
		section = profile
		out = append(out, "", "["+profile+"]", "auth_type = databricks-cli")
		flush()
	}
	if foundHost == "" {
		return "", fmt.Errorf("profile %q in %s has no host: pass --host", profile, path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".databrickscfg-*")
	if err != nil {
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(out, "\n") + "\n"); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	return foundHost, nil
}
