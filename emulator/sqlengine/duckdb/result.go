//go:build cgo

package duckdb

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/databricks-sample/go-apps-api/emulator/sqlengine"
)

// readResult reads rows up to the limits, each value in the text form of the Statement Execution API's JSON_ARRAY
// format. It reads one row past RowLimit, to say whether the result was cut.
func readResult(rows *sql.Rows, rowLimit, byteLimit int64) (*sqlengine.Result, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &sqlengine.Result{Rows: [][]*string{}}
	for _, t := range types {
		text, name := sqlengine.DatabricksType(t.DatabaseTypeName())
		c := sqlengine.ResultColumn{Name: t.Name(), TypeText: text, TypeName: name}
		if p, s, ok := sqlengine.DecimalSize(t.DatabaseTypeName()); ok {
			c.Precision, c.Scale = p, s
		}
		res.Columns = append(res.Columns, c)
	}
	values := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if rowLimit > 0 && int64(len(res.Rows)) == rowLimit {
			res.Truncated = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(values))
		var size int64
		for i, v := range values {
			if v == nil {
				continue
			}
			s := format(v, res.Columns[i])
			row[i] = &s
			size += int64(len(s))
		}
		if byteLimit > 0 && res.Bytes+size > byteLimit {
			res.Truncated = true
			break
		}
		res.Bytes += size
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// format writes a value as Databricks writes it in JSON_ARRAY results: numbers in full, booleans as true/false,
// dates as 2006-01-02, timestamps in ISO 8601 with milliseconds, binary as base64, nested values as JSON.
func format(v any, col sqlengine.ResultColumn) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	case *big.Int:
		return v.String()
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case duckdbdriver.Decimal:
		return formatDecimal(v)
	case time.Time:
		switch col.TypeName {
		case "DATE":
			return v.Format(time.DateOnly)
		case "TIMESTAMP":
			if col.TypeText == "TIMESTAMP" {
				return v.UTC().Format("2006-01-02T15:04:05.000Z")
			}
			return v.Format("2006-01-02T15:04:05.000")
		}
		return v.Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case duckdbdriver.Interval:
		return formatInterval(v)
	case duckdbdriver.UUID:
		return (&v).String()
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// formatDecimal keeps every digit of the scale, as Databricks does (10.50, not 10.5).
func formatDecimal(d duckdbdriver.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	digits := new(big.Int).Abs(d.Value).String()
	scale := int(d.Scale)
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	out := digits
	if scale > 0 {
		out = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if d.Value.Sign() < 0 {
		out = "-" + out
	}
	return out
}

func formatInterval(i duckdbdriver.Interval) string {
	var parts []string
	if i.Months != 0 {
		parts = append(parts, fmt.Sprintf("%d months", i.Months))
	}
	if i.Days != 0 {
		parts = append(parts, fmt.Sprintf("%d days", i.Days))
	}
	if i.Micros != 0 || len(parts) == 0 {
		parts = append(parts, (time.Duration(i.Micros) * time.Microsecond).String())
	}
	return strings.Join(parts, " ")
}

// jsonable turns the driver's nested values (lists, structs, maps) into what encoding/json writes.
func jsonable(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonable(e)
		}
		return out
	case duckdbdriver.Map:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case duckdbdriver.Decimal:
		return json.Number(formatDecimal(v))
	case time.Time:
		return v.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return v
}
