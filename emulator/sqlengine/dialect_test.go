package sqlengine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTranslate(t *testing.T) {
	dollar := func(name string) string { return "$" + name }
	for _, tc := range []struct {
		in, out string
		names   []string
	}{
		{"SELECT * FROM t WHERE a = :a AND b = :b_2 OR c = :a", "SELECT * FROM t WHERE a = $a AND b = $b_2 OR c = $a", []string{"a", "b_2"}},
		{"SELECT x::INT, ':not' FROM t -- :no\nWHERE y = :yes", "SELECT x::INT, ':not' FROM t -- :no\nWHERE y = $yes", []string{"yes"}},
		{"SELECT 'it''s :x' /* :y */ , \":z\"", "SELECT 'it''s :x' /* :y */ , \":z\"", nil},
		{"SELECT * FROM `my catalog`.s.`t``x`", "SELECT * FROM \"my catalog\".s.\"t`x\"", nil},
		{"SELECT 1 :: INT", "SELECT 1 :: INT", nil},
	} {
		out, names, err := Translate(tc.in, dollar)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.out, out, tc.in)
		assert.Equal(t, tc.names, names, tc.in)
	}
	for _, bad := range []string{"SELECT 'open", "SELECT `open", "SELECT 1 /* open", "SELECT ?"} {
		_, _, err := Translate(bad, dollar)
		var se *Error
		assert.ErrorAs(t, err, &se, bad)
	}
}

func TestEngineTypeAcceptsTypeNamesOnly(t *testing.T) {
	for in, want := range map[string]string{"string": "VARCHAR", "BIGINT": "BIGINT", "decimal(10, 2)": "DECIMAL(10,2)",
		"TIMESTAMP": "TIMESTAMPTZ", "timestamp_ntz": "TIMESTAMP", "DEC(5)": "DECIMAL(5,0)", "LONG": "BIGINT"} {
		got, err := EngineType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"INT); DROP TABLE x", "VARCHAR[]", "DECIMAL(100,2)", "STRUCT<a INT>"} {
		_, err := EngineType(bad)
		assert.Error(t, err, bad)
	}
	p, s, ok := DecimalSize("DECIMAL(10,2)")
	assert.True(t, ok)
	assert.Equal(t, [2]int{10, 2}, [2]int{p, s})
}
