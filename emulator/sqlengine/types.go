package sqlengine

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// decimalType matches DECIMAL(p,s), also spelt DEC or NUMERIC.
var decimalType = regexp.MustCompile(`^(?:DECIMAL|DEC|NUMERIC)\s*\(\s*([0-9]{1,2})\s*(?:,\s*([0-9]{1,2})\s*)?\)$`)

// EngineType maps a Databricks SQL type name, as a model's column or a typed parameter gives it, to DuckDB's
// spelling. Only these scalar types are accepted, so a type never smuggles SQL into a statement.
func EngineType(databricks string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(databricks))
	if m := decimalType.FindStringSubmatch(t); m != nil {
		scale := m[2]
		if scale == "" {
			scale = "0"
		}
		return "DECIMAL(" + m[1] + "," + scale + ")", nil
	}
	switch t {
	case "", "STRING", "VARCHAR", "CHAR":
		return "VARCHAR", nil
	case "INT", "INTEGER":
		return "INTEGER", nil
	case "BIGINT", "LONG":
		return "BIGINT", nil
	case "SMALLINT", "SHORT":
		return "SMALLINT", nil
	case "TINYINT", "BYTE":
		return "TINYINT", nil
	case "DOUBLE":
		return "DOUBLE", nil
	case "FLOAT", "REAL":
		return "FLOAT", nil
	case "BOOLEAN":
		return "BOOLEAN", nil
	case "DATE":
		return "DATE", nil
	case "TIMESTAMP":
		return "TIMESTAMPTZ", nil
	case "TIMESTAMP_NTZ":
		return "TIMESTAMP", nil
	case "DECIMAL", "DEC", "NUMERIC":
		return "DECIMAL(10,0)", nil
	case "BINARY":
		return "BLOB", nil
	}
	return "", fmt.Errorf("unsupported type %q: use STRING, INT, BIGINT, SMALLINT, TINYINT, DOUBLE, FLOAT, "+
		"BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_NTZ, DECIMAL(p,s) or BINARY", databricks)
}

// DatabricksType names an engine column type as the Statement Execution API's manifest does: its type_text (the
// SQL spelling) and its type_name (the ColumnInfoTypeName enum).
func DatabricksType(engine string) (typeText, typeName string) {
	t := strings.ToUpper(engine)
	switch {
	case strings.HasPrefix(t, "DECIMAL"):
		return t, "DECIMAL"
	case strings.HasSuffix(t, "[]"):
		inner, _ := DatabricksType(strings.TrimSuffix(t, "[]"))
		return "ARRAY<" + inner + ">", "ARRAY"
	case strings.HasPrefix(t, "STRUCT"):
		return "STRUCT", "STRUCT"
	case strings.HasPrefix(t, "MAP"):
		return "MAP", "MAP"
	}
	switch t {
	case "BOOLEAN":
		return "BOOLEAN", "BOOLEAN"
	case "TINYINT":
		return "TINYINT", "BYTE"
	case "SMALLINT":
		return "SMALLINT", "SHORT"
	case "INTEGER":
		return "INT", "INT"
	case "BIGINT":
		return "BIGINT", "LONG"
	case "HUGEINT", "UBIGINT":
		return "DECIMAL(38,0)", "DECIMAL"
	case "UTINYINT", "USMALLINT":
		return "INT", "INT"
	case "UINTEGER":
		return "BIGINT", "LONG"
	case "FLOAT":
		return "FLOAT", "FLOAT"
	case "DOUBLE":
		return "DOUBLE", "DOUBLE"
	case "DATE":
		return "DATE", "DATE"
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return "TIMESTAMP", "TIMESTAMP"
	case "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS":
		return "TIMESTAMP_NTZ", "TIMESTAMP"
	case "BLOB":
		return "BINARY", "BINARY"
	case "INTERVAL":
		return "INTERVAL", "INTERVAL"
	case "NULL", "SQLNULL":
		return "VOID", "NULL"
	}
	return "STRING", "STRING"
}

// DecimalSize reads the precision and scale of a DECIMAL(p,s) type.
func DecimalSize(typ string) (precision, scale int, ok bool) {
	m := decimalType.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(typ)))
	if m == nil {
		return 0, 0, false
	}
	precision, _ = strconv.Atoi(m[1])
	scale, _ = strconv.Atoi(m[2]) // "" when left out: 0
	return precision, scale, true
}
