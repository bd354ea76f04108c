package databrickscli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/databricks/databricks-sdk-go/config"
	"gopkg.in/ini.v1"

	"github.com/databricks-sample/go-apps-api/internal/atomicfile"
)

// readProfile returns the settings of one profile of a .databrickscfg, read as the SDK reads it (config.LoadFile).
func readProfile(path, profile string) (map[string]string, error) {
	f, err := config.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the CLI config: %w", err)
	}
	section, err := f.GetSection(profile)
	if err != nil {
		return nil, fmt.Errorf("no profile %q in %s", profile, path)
	}
	return section.KeysHash(), nil
}

// writeProfile sets host (when given) and scopes in profile's section of the .databrickscfg at path, adding the
// section when there is none (with auth_type databricks-cli and cliPath as its databricks_cli_path), and returns the
// profile's host. An empty scopes removes the key: the default
// all-apis. The rest of the file is kept; it is written as the Databricks CLI writes it (gopkg.in/ini.v1, the SDK's
// INI library), replaced in one rename, owner-only.
func writeProfile(path, profile, host, scopes, cliPath string) (string, error) {
	f, err := config.LoadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f = &config.File{File: ini.Empty()}
	case err != nil:
		return "", fmt.Errorf("read the CLI config: %w", err)
	}
	section, err := f.GetSection(profile)
	if err != nil {
		if host == "" {
			return "", fmt.Errorf("no profile %q in %s: pass --host to create it", profile, path)
		}
		section = f.Section(profile)
		section.Key("auth_type").SetValue("databricks-cli")
		if cliPath != "" {
			section.Key("databricks_cli_path").SetValue(cliPath)
		}
	}
	if host != "" {
		section.Key("host").SetValue(host)
	}
	if scopes != "" {
		section.Key("scopes").SetValue(scopes)
	} else {
		section.DeleteKey("scopes")
	}
	foundHost := strings.TrimRight(section.Key("host").String(), "/")
	if foundHost == "" {
		return "", fmt.Errorf("profile %q in %s has no host: pass --host", profile, path)
	}
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	if err := atomicfile.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("write the CLI config: %w", err)
	}
	return foundHost, nil
}
