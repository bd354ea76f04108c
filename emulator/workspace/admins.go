package workspace

// Workspace admins (the model's admins group, GroupAdmins) may read and change any app and its permissions, as a
// workspace admin may on Databricks: so an app whose managers all removed themselves is never lost.

// mayManage reports whether p may change the app s describes: CAN_MANAGE on it, or a workspace admin.
func mayManage(s *appSettings, p principal) bool {
	return p.isAdmin() || s.has(p, PermissionCanManage)
}

// mayUse reports whether p may call the app s describes: CAN_USE on it, or a workspace admin (CAN_MANAGE on every
// app includes CAN_USE).
func mayUse(s *appSettings, p principal) bool {
	return p.isAdmin() || s.has(p, PermissionCanUse)
}
