package workspace

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// GroupsOf is what the engine reads for a principal: every principal's groups, then the model's, for a user by user
// name and a service principal by name.
func TestConfigGroupsOf(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	assert.Equal(t, []string{GroupUsers, GroupAccountUsers, "sales"}, cfg.GroupsOf("ana@example.com"))
	assert.Equal(t, []string{GroupUsers, GroupAccountUsers, "sales-reporting"}, cfg.GroupsOf("api-app"))
	assert.Nil(t, cfg.GroupsOf("nobody@example.com"))
}
