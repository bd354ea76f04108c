package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The app's query is read from its source, not copied into the bench.
func TestStringConst(t *testing.T) {
	q, err := stringConst("../../app/data.go", "ordersQuery")
	require.NoError(t, err)
	assert.Contains(t, q, "FROM samples.sales.orders")
	_, err = stringConst("../../app/data.go", "noSuchQuery")
	assert.ErrorContains(t, err, "no constant noSuchQuery")
}
