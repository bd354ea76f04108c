package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/databricks/databricks-sdk-go/config"
)

// profileProblem says what a mode that reads a .databrickscfg profile is missing, before the SDK says "host is
// required" or "cannot configure default credentials" and the fix reads "run databricks auth login": which file was
// read and why, whether the profile is in it (and which are), and whether it has a host. nil when the profile is
// there with a host (or, with needHost false, without one). what names who reads it ("local mode"); profile "" is
// the file's default profile.
func profileProblem(getenv func(string) string, what, profile string, needHost bool) *failure {
	path := configFilePath(getenv)
	which := path + " (DATABRICKS_CONFIG_FILE)"
	var checks []string
	if getenv("DATABRICKS_CONFIG_FILE") == "" {
		which = path + " (the default: DATABRICKS_CONFIG_FILE is not set)"
		// The likeliest case in a new terminal: the emulator's profile is in a file of its own.
		checks = append(checks, "with the emulator, its profile \"emulator\" lives in the .databrickscfg its state file "+
			"names (emulator serve --state FILE prints it too): "+
			`export DATABRICKS_CONFIG_FILE="$(jq -r .config_file FILE)"`)
	}
	f, err := config.LoadFile(path)
	name := cmp.Or(profile, defaultProfile(f))
	login := "with a workspace, log in first: databricks auth login --host https://<workspace-url> --profile " + name
	problem := func(format string, args ...any) *failure {
		return &failure{Code: exitUsage, Summary: what + ": " + fmt.Sprintf(format, args...), Checks: append(checks, login)}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return problem("profile %s: there is no config file %s", name, which)
	case err != nil:
		return &failure{Code: exitUsage, Summary: fmt.Sprintf("%s: cannot read %s: %v", what, which, err)}
	}
	profiles := profileNames(f)
	section, err := f.GetSection(name)
	switch {
	case (err != nil || len(section.Keys()) == 0) && len(profiles) == 0:
		return problem("no profile %s in %s, which has none", name, which)
	case err != nil || len(section.Keys()) == 0:
		// A typo, most likely: the file's profiles, not a login under the mistyped name.
		return &failure{Code: exitUsage,
			Summary: fmt.Sprintf("%s: no profile %s in %s; its profiles: %s", what, name, which, strings.Join(profiles, ", ")),
			Checks:  append([]string{"the profile is one of the file's: --profile " + strings.Join(profiles, ", --profile ")}, checks...)}
	case needHost && !section.HasKey("host"):
		return problem("profile %s in %s has no host", name, which)
	}
	return nil
}

// defaultProfile is the profile the SDK reads when none is named: [__settings__] default_profile, else DEFAULT.
func defaultProfile(f *config.File) string {
	if f != nil {
		if s, err := f.GetSection("__settings__"); err == nil {
			if v := strings.TrimSpace(s.Key("default_profile").String()); v != "" {
				return v
			}
		}
	}
	return "DEFAULT"
}

// profileNames are the file's profiles: its sections with settings in them, the tool settings' excepted.
func profileNames(f *config.File) []string {
	var names []string
	for _, s := range f.Sections() {
		if len(s.Keys()) > 0 && s.Name() != "__settings__" {
			names = append(names, s.Name())
		}
	}
	slices.Sort(names)
	return names
}
