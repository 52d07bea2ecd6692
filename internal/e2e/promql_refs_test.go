package e2e

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promRefs is what a PromQL expression names: the metrics with the labels
// their selectors match on, the labels it groups or matches by, and the
// functions it calls.
//
// It comes from a tokenizer, not the Prometheus parser
// (github.com/prometheus/prometheus/promql/parser would pull the whole
// Prometheus module into go.mod for one test): identifiers are classified
// by what follows them and by PromQL's keywords, which is enough to find
// every metric and label name an expression uses. Whether the expression
// is valid PromQL is promtool's job (TestDeployPromtool); what this adds is
// whether the names exist.
type promRefs struct {
	Metrics  map[string][]string // metric → label names in its selector
	Grouping []string            // labels of by/without/on/ignoring/group_left/group_right
	Funcs    []string
	// By: the labels of by (...) clauses; Without: a without clause is used.
	// With an aggregation and no without, the result carries the By labels
	// only (what a legend or an alert annotation can show).
	By      []string
	Without bool
}

// aggregates reports whether the expression aggregates (sum, max, ...).
func (r promRefs) aggregates() bool {
	return slices.ContainsFunc(r.Funcs, func(f string) bool { return promAggregations[f] })
}

// promAggregations are the aggregation operators.
var promAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": false, "bottomk": false, "quantile": true, "count_values": true, "group": true, "limitk": false, "limit_ratio": false}

// promFuncs are PromQL's functions and aggregations; calling anything else
// is a mistake this check reports.
var promFuncs = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio
		abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year days_in_month
		delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
		histogram_sum holt_winters double_exponential_smoothing hour idelta increase irate label_join label_replace ln log2 log10
		minute month predict_linear rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt time
		timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
		stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time acos acosh asin asinh atan atanh cos
		cosh sin sinh tan tanh deg rad pi`) {
		promFuncs[f] = true
	}
}

// Keywords that are followed by a parenthesised list of label names.
var promGroupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// Keywords and literals that are neither metrics nor functions.
var promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true, "start": true, "end": true}

type promToken struct {
	kind string // ident, string, number, op
	text string
}

// grafanaVars replaces Grafana's interval variables by a duration, as
// Grafana does before sending a query; other variables may only appear
// inside label values (strings).
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m", "${__interval}", "1m", "$__range", "1h", "${__range}", "1h")

func promLex(expr string) ([]promToken, error) {
	expr = grafanaVars.Replace(expr)
	var out []promToken
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, promToken{"string", expr[i+1 : j]})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			j := i
			for j < len(expr) && (isIdent(expr[j]) && expr[j] != ':' || expr[j] == '.') {
				j++
			}
			out = append(out, promToken{"number", expr[i:j]})
			i = j
		case isIdentStart(c) && c != ':':
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			out = append(out, promToken{"ident", expr[i:j]})
			i = j
		case c == '$':
			return nil, fmt.Errorf("Grafana variable outside a label value at %d: %q", i, expr[i:min(len(expr), i+20)])
		default:
			op := string(c)
			if i+1 < len(expr) {
				if two := expr[i : i+2]; slices.Contains([]string{"==", "!=", "=~", "!~", ">=", "<="}, two) {
					op = two
				}
			}
			if !strings.Contains("+-*/%^<>=!~(){}[],:@", op[:1]) {
				return nil, fmt.Errorf("unexpected %q at %d", op, i)
			}
			out = append(out, promToken{"op", op})
			i += len(op)
		}
	}
	return out, nil
}

// parsePromRefs finds what expr names.
func parsePromRefs(expr string) (promRefs, error) {
	toks, err := promLex(expr)
	if err != nil {
		return promRefs{}, err
	}
	r := promRefs{Metrics: map[string][]string{}}
	depth := map[string]int{}
	pairs := map[string]string{")": "(", "}": "{", "]": "["}
	is := func(i int, kind, text string) bool {
		return i < len(toks) && toks[i].kind == kind && (text == "" || toks[i].text == text)
	}
	// matchers reads {name op "value", ...} starting at the '{' at i and
	// returns the label names and the index after '}'.
	matchers := func(i int) ([]string, int, error) {
		var labels []string
		i++
		for !is(i, "op", "}") {
			if !is(i, "ident", "") {
				return nil, i, fmt.Errorf("label name expected in a selector, got %v", toks[min(i, len(toks)-1)])
			}
			if !is(i+1, "op", "=") && !is(i+1, "op", "!=") && !is(i+1, "op", "=~") && !is(i+1, "op", "!~") {
				return nil, i, fmt.Errorf("matcher operator expected after label %s", toks[i].text)
			}
			if !is(i+2, "string", "") {
				return nil, i, fmt.Errorf("quoted value expected after %s%s", toks[i].text, toks[i+1].text)
			}
			labels = append(labels, toks[i].text)
			i += 3
			if is(i, "op", ",") {
				i++
			} else if !is(i, "op", "}") {
				return nil, i, fmt.Errorf("',' or '}' expected after matcher of %s", labels[len(labels)-1])
			}
		}
		return labels, i + 1, nil
	}
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.kind == "ident" && promGroupingKeywords[t.text]:
			i++
			if !is(i, "op", "(") {
				if t.text == "group_left" || t.text == "group_right" {
					continue
				}
				return r, fmt.Errorf("'(' expected after %s", t.text)
			}
			if t.text == "without" {
				r.Without = true
			}
			for i++; !is(i, "op", ")"); i++ {
				switch {
				case is(i, "ident", ""):
					r.Grouping = append(r.Grouping, toks[i].text)
					if t.text == "by" {
						r.By = append(r.By, toks[i].text)
					}
				case is(i, "op", ","):
				default:
					return r, fmt.Errorf("label name expected in %s (...), got %v", t.text, toks[min(i, len(toks)-1)])
				}
			}
			i++
		case t.kind == "ident" && promKeywords[t.text]:
			i++
		case t.kind == "ident" && (is(i+1, "op", "(") || promFuncs[t.text] && (is(i+1, "ident", "by") || is(i+1, "ident", "without"))):
			if !promFuncs[t.text] {
				return r, fmt.Errorf("unknown function %s", t.text)
			}
			r.Funcs = append(r.Funcs, t.text)
			i++
		case t.kind == "ident":
			labels := []string{}
			i++
			if is(i, "op", "{") {
				var err error
				if labels, i, err = matchers(i); err != nil {
					return r, err
				}
			}
			r.Metrics[t.text] = append(r.Metrics[t.text], labels...)
		case t.kind == "op" && t.text == "{":
			// A selector without a metric name: {__name__="x", ...}.
			start := i
			labels, j, err := matchers(i)
			if err != nil {
				return r, err
			}
			for k := start + 1; k+2 < j; k++ {
				if is(k, "ident", "__name__") && is(k+1, "op", "=") && is(k+2, "string", "") {
					r.Metrics[toks[k+2].text] = append(r.Metrics[toks[k+2].text], labels...)
				}
			}
			i = j
		case t.kind == "op" && strings.Contains("([", t.text):
			depth[t.text]++
			i++
		case t.kind == "op" && strings.Contains(")]}", t.text):
			open := pairs[t.text]
			if depth[open] == 0 {
				return r, fmt.Errorf("unbalanced %q", t.text)
			}
			depth[open]--
			i++
		default:
			i++
		}
	}
	for open, n := range depth {
		if n != 0 {
			return r, fmt.Errorf("unclosed %q", open)
		}
	}
	for m, ls := range r.Metrics {
		r.Metrics[m] = slices.Compact(slices.Sorted(slices.Values(ls)))
	}
	r.Grouping = slices.Compact(slices.Sorted(slices.Values(r.Grouping)))
	r.By = slices.Compact(slices.Sorted(slices.Values(r.By)))
	return r, nil
}

// grafanaLabelValues matches a Grafana variable query label_values(selector, label).
var grafanaLabelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// templateLabels finds the labels a legend format ({{route}}) or an alert
// annotation ({{ $labels.partition }}) uses.
var templateLabels = regexp.MustCompile(`\{\{\s*(?:\$labels\.)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

func TestPromQLRefs(t *testing.T) {
	for _, c := range []struct {
		expr string
		want promRefs
	}{
		{`max by (partition) (zohook_events_oldest_waiting_seconds) > 600`,
			promRefs{Metrics: map[string][]string{"zohook_events_oldest_waiting_seconds": nil}, Grouping: []string{"partition"}, Funcs: []string{"max"}, By: []string{"partition"}}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(zohook_receiver_request_duration_seconds_bucket{route=~"/zoho.*", code!="5xx"}[$__rate_interval])))`,
			promRefs{Metrics: map[string][]string{"zohook_receiver_request_duration_seconds_bucket": {"code", "route"}}, Grouping: []string{"le", "route"},
				Funcs: []string{"histogram_quantile", "sum", "rate"}, By: []string{"le", "route"}}},
		{`max by (stream) (zohook_stream_bytes{stream="ZOHOOK_WORK"} / on (stream, instance) group_left zohook_stream_max_bytes) > 0.8`,
			promRefs{Metrics: map[string][]string{"zohook_stream_bytes": {"stream"}, "zohook_stream_max_bytes": nil}, Grouping: []string{"instance", "stream"}, Funcs: []string{"max"}, By: []string{"stream"}}},
		{`time() - max(zohook_reconcile_last_success_timestamp_seconds offset 5m) > 12 * 3600`,
			promRefs{Metrics: map[string][]string{"zohook_reconcile_last_success_timestamp_seconds": nil}, Funcs: []string{"time", "max"}}},
		{`absent(up{job="zohook-worker"} == 1) or {__name__="zohook_workers_live", job=~"$job"}`,
			promRefs{Metrics: map[string][]string{"up": {"job"}, "zohook_workers_live": {"__name__", "job"}}, Funcs: []string{"absent"}}},
		{`max_over_time(rate(zohook_zoho_calls_total[5m])[1h:1m])`,
			promRefs{Metrics: map[string][]string{"zohook_zoho_calls_total": nil}, Funcs: []string{"max_over_time", "rate"}}},
	} {
		got, err := parsePromRefs(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if len(got.Grouping) == 0 {
			got.Grouping = nil
		}
		if len(got.By) == 0 {
			got.By = nil
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{
		`sum(rat(zohook_zoho_calls_total[5m]))`,              // misspelt function
		`sum(rate(zohook_zoho_calls_total[5m])`,              // unclosed
		`zohook_events_pending{partition=3}`,                 // unquoted value
		`zohook_events_pending{partition="3"`,                // unclosed selector
		`sum by partition (zohook_events_pending)`,           // grouping without parentheses
		`rate(zohook_zoho_calls_total[$__rate_interval]) $x`, // a variable outside a label value
	} {
		if _, err := parsePromRefs(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
