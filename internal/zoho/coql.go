package zoho

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// COQLMaxRecords is the most records COQL paging can reach (v7/v8, §3).
const COQLMaxRecords = 100000

// COQL runs one select_query and returns its rows; a 204 gives no rows.
func (s *CRMService) COQL(ctx context.Context, query string) ([]Record, *Response, error) {
	if strings.TrimSpace(query) == "" {
		return nil, nil, &InputError{Input: "query", Reason: "required"}
	}
	b, err := jsonBody(map[string]string{"select_query": query})
	if err != nil {
		return nil, nil, err
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodPost, path: "coql", body: b, contentType: "application/json"})
	if err != nil {
		return nil, res.response(), err
	}
	resp := res.response()
	resp.Info = &PageInfo{}
	if res.status == http.StatusNoContent {
		return nil, resp, nil
	}
	var env listEnvelope
	if err := decodeJSON(res.body, &env); err != nil {
		return nil, resp, err
	}
	resp.Info = &env.Info
	return env.Data, resp, nil
}

// limitClause matches a trailing "limit N", "limit N offset M" or "limit M, N".
var limitClause = regexp.MustCompile(`(?is)\s+limit\s+(\d+)(?:\s*,\s*(\d+))?(?:\s+offset\s+(\d+))?\s*;?\s*$`)

// offsetOnly matches a trailing "offset M" without limit.
var offsetOnly = regexp.MustCompile(`(?is)\s+offset\s+(\d+)\s*;?\s*$`)

// splitLimit removes a trailing LIMIT/OFFSET clause and returns the base
// query, the caller's limit (0 = none) and offset.
func splitLimit(q string) (base string, limit, offset int) {
	q = strings.TrimSpace(q)
	if m := limitClause.FindStringSubmatchIndex(q); m != nil {
		sub := func(i int) string {
			if m[2*i] < 0 {
				return ""
			}
			return q[m[2*i]:m[2*i+1]]
		}
		a, _ := strconv.Atoi(sub(1))
		switch {
		case sub(2) != "": // "limit offset, count"
			offset = a
			limit, _ = strconv.Atoi(sub(2))
		default:
			limit = a
			offset, _ = strconv.Atoi(sub(3))
		}
		return strings.TrimSpace(q[:m[0]]), limit, offset
	}
	if m := offsetOnly.FindStringSubmatch(q); m != nil {
		offset, _ = strconv.Atoi(m[1])
		return strings.TrimSpace(q[:len(q)-len(m[0])]), 0, offset
	}
	return strings.TrimSuffix(q, ";"), 0, 0
}

// COQLAll pages through a query with LIMIT/OFFSET (any LIMIT/OFFSET in the
// query is rewritten: its LIMIT becomes the total cap, its OFFSET the start),
// stopping on more_records=false or at 100,000 records.
func (s *CRMService) COQLAll(ctx context.Context, query string) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		base, limit, offset := splitLimit(query)
		if base == "" {
			yield(nil, &InputError{Input: "query", Reason: "required"})
			return
		}
		capN := COQLMaxRecords
		if limit > 0 {
			capN = min(limit, capN)
		}
		page := s.c.coqlPageSize
		got := 0
		for got < capN && offset < COQLMaxRecords {
			n := min(page, capN-got, COQLMaxRecords-offset)
			rows, resp, err := s.COQL(ctx, fmt.Sprintf("%s limit %d offset %d", base, n, offset))
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range rows {
				if !yield(r, nil) {
					return
				}
			}
			got += len(rows)
			offset += len(rows)
			if len(rows) == 0 || resp.Info == nil || !resp.Info.MoreRecords {
				return
			}
		}
	}
}
