package workspace

// Who may see and change which workspace object. A workspace gives each principal a home folder, /Users/<userName>
// for a user and /Users/<application id> for a service principal, on which it holds CAN MANAGE while every other
// principal holds NO PERMISSIONS; every principal holds CAN MANAGE on the objects in /Shared; and only workspace
// admins may add objects to the root. The emulator models no workspace admins, so that is all there is: nobody,
// whatever token it holds, reads or writes another principal's home.
//
// The answer depends on the path alone and is given before the file system is asked, so what exists where the caller
// may not look never changes what it is told, and a path only ever reaches an object through its exact spelling:
// /users/… or /Users/DEV@example.com/… belong to nobody, even on a disk that ignores letter case.

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// Top-level folders every workspace has.
const (
	folderUsers  = "Users"
	folderShared = "Shared"
)

// access is what a principal may do with one workspace object.
type access int

const (
	// accessNone: for this principal the object does not exist. Reading it answers 404, as a workspace answers for
	// a folder one may not read; changing it answers 403.
	accessNone access = iota
	// accessList: the principal may see and list the folder, not change it: the root, /Users and /Shared themselves.
	accessList
	// accessManage: everything: the principal's own home and what is in it, and what is in /Shared.
	accessManage
)

// accessTo says what who may do with the object at p.
func accessTo(who principal, p objectPath) access {
	if p.rel == "." {
		return accessList
	}
	top, below, _ := strings.Cut(p.rel, "/")
	switch {
	case top == folderShared && below == "", top == folderUsers && below == "":
		return accessList
	case top == folderShared:
		return accessManage
	case top == folderUsers:
		owner, _, _ := strings.Cut(below, "/")
		if who.UserName != "" && owner == who.UserName {
			return accessManage
		}
	}
	return accessNone
}

// mayRead refuses what who may not see with the answer for a missing object, so a refusal says nothing of what is
// there.
func mayRead(who principal, p objectPath) *jsonhttp.Error {
	if accessTo(who, p) == accessNone {
		return notFound(p)
	}
	return nil
}

// mayWrite refuses a change outside what who manages, as a workspace does: 403, whether the object exists or not.
func mayWrite(who principal, p objectPath) *jsonhttp.Error {
	if accessTo(who, p) == accessManage {
		return nil
	}
	return &jsonhttp.Error{Status: http.StatusForbidden, Code: jsonhttp.CodePermissionDenied,
		Message: fmt.Sprintf("%s does not have Manage permissions on %s. Please contact the owner or an administrator for access.",
			who.UserName, p.asked),
		Fix: "write under your own home folder, /Workspace/Users/" + who.UserName + ", or under /Workspace/Shared"}
}

// specialFolder reports whether p is a folder the workspace itself keeps: the root, /Users, /Shared and each home
// folder. Nobody deletes them.
func specialFolder(p objectPath) bool {
	top, below, _ := strings.Cut(p.rel, "/")
	return p.rel == "." || (top == folderShared && below == "") || (top == folderUsers && !strings.Contains(below, "/"))
}

// homeFolderName checks that name (a user name or an application id) can name a home folder: a single plain segment
// of a workspace path.
func homeFolderName(name string) error {
	p, jerr := parseObjectPath("/" + folderUsers + "/" + name)
	switch {
	case jerr != nil:
		return errors.New(jerr.Message)
	case p.rel != folderUsers+"/"+name:
		return errors.New("it must be one plain path segment, without /")
	}
	return nil
}

// makeHomeFolders creates /Users, /Shared and the home folder of each principal of the model, which a workspace has
// from the start. The home of an app's service principal created later appears with its first mkdirs.
func (wf *workspaceFiles) makeHomeFolders() error {
	root, err := wf.openFiles()
	if err != nil {
		return err
	}
	defer root.Close()
	folders := []string{folderUsers, folderShared}
	for _, u := range wf.who.users() {
		folders = append(folders, folderUsers+"/"+u.UserName)
	}
	for _, sp := range wf.who.servicePrincipals() {
		folders = append(folders, folderUsers+"/"+sp.ApplicationID)
	}
	for _, f := range folders {
		if err := root.MkdirAll(f, 0o755); err != nil {
			return fmt.Errorf("workspace folder /%s: %w", f, err)
		}
	}
	// Uploads a previous run of the emulator left unfinished (uploads.go) are nobody's.
	stale, _ := fs.Glob(root.FS(), uploadPrefix+"*")
	for _, name := range stale {
		_ = root.Remove(name)
	}
	return nil
}
