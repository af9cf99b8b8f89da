package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// result is the part of a wsbench JSON line the report uses.
type result struct {
	Label       string  `json:"label"`
	Clients     int     `json:"clients"`
	ConnOK      int     `json:"conn_ok"`
	TargetRate  float64 `json:"target_rate"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	DeliveredPS float64 `json:"delivered_per_s"`
	SpreadMs    struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"spread_ms"`
	LatencyMs *struct {
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	Loss struct {
		Lost int64 `json:"lost_deliveries"`
	} `json:"loss"`
	Server *struct {
		CPUPerMillS  float64 `json:"cpu_s_per_million"`
		CPUPct       float64 `json:"cpu_pct"`
		RSSPerConnKB float64 `json:"rss_per_conn_kb"`
	} `json:"server"`
	OtherCPUPct float64 `json:"other_cpu_pct"`
	Error       string  `json:"error"`
}

// report prints, from wsbench's JSON lines, one table row per run and the
// ratios of ours to the hub and to Node-RED for runs with the same clients
// and rate (same run of bench.sh, same machine).
func report(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct {
		clients int
		rate    float64
	}
	byKey := map[key]map[string][]result{}
	var keys []key
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintln(w, "| server | clients | msg/s | deliveries/s | CPU-s per 1M deliveries | server CPU % | KiB per conn | spread p50/p99 ms | latency p99 ms | lost | other CPU % |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Server == nil {
			fmt.Fprintf(w, "| (bad line: %s) |\n", strings.TrimSpace(sc.Text()))
			continue
		}
		mode, _, _ := strings.Cut(r.Label, " ")
		lat := "-"
		if r.LatencyMs != nil {
			lat = fmt.Sprintf("%.1f", r.LatencyMs.P99)
		}
		fmt.Fprintf(w, "| %s | %d | %.1f | %.0f | %.2f | %.1f | %.2f | %.1f / %.1f | %s | %d | %.0f |\n",
			mode, r.ConnOK, r.MsgsPerS, r.DeliveredPS, r.Server.CPUPerMillS, r.Server.CPUPct,
			r.Server.RSSPerConnKB, r.SpreadMs.P50, r.SpreadMs.P99, lat, r.Loss.Lost, r.OtherCPUPct)
		k := key{r.Clients, r.TargetRate}
		if byKey[k] == nil {
			byKey[k] = map[string][]result{}
			keys = append(keys, k)
		}
		byKey[k][mode] = append(byKey[k][mode], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].clients != keys[j].clients {
			return keys[i].clients < keys[j].clients
		}
		return keys[i].rate < keys[j].rate
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| clients | msg/s | CPU per delivery, ours / hub | ours / Node-RED | KiB per conn, ours / hub | ours / Node-RED | spread p99 ms, ours / hub / Node-RED | floor: CPU-s per 1M, spread p99 ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		last := func(mode string) *result {
			if rs := byKey[k][mode]; len(rs) > 0 {
				return &rs[len(rs)-1]
			}
			return nil
		}
		o := last("ours")
		if o == nil {
			continue
		}
		cpu := func(r *result) float64 { return r.Server.CPUPerMillS }
		mem := func(r *result) float64 { return r.Server.RSSPerConnKB }
		vs := func(base *result, f func(*result) float64) string {
			if base == nil {
				return "-"
			}
			return fmt.Sprintf("%.2fx (%.2f / %.2f)", ratio(f(o), f(base)), f(o), f(base))
		}
		p99 := func(r *result) string {
			if r == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f", r.SpreadMs.P99)
		}
		hub, red, fl := last("hub"), last("nodered"), "-"
		if f := last("floor"); f != nil {
			fl = fmt.Sprintf("%.2f, %.1f", f.Server.CPUPerMillS, f.SpreadMs.P99)
		}
		fmt.Fprintf(w, "| %d | %g | %s | %s | %s | %s | %s / %s / %s | %s |\n",
			k.clients, k.rate, vs(hub, cpu), vs(red, cpu), vs(hub, mem), vs(red, mem),
			p99(o), p99(hub), p99(red), fl)
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
