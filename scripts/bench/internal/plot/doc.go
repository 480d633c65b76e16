// Command plot is the engine of scripts/bench/plot: it draws the
// benchmarks' summary CSVs (scripts/bench/results, gitignored) as PNG
// charts into docs/img (committed, so that the README and
// docs/benchmarks.md can show them). Each chart is 800×500 px, with a
// footnote naming the CSV and the time and source ("working tree at …")
// of the rows drawn.
//
//   - heal.png, from heal-summary.csv: T2 (every survivor's DNS answers 3
//     live replicas that answer HTTP) per profile and cluster size, median
//     as a bar and max as a whisker, with each profile's aim (aim_t2_ms,
//     else 10 s lan and 4 s fast) as a dashed line. The file is appended
//     to by every run; of the rows with a T2, the newest of each profile
//     and size is drawn.
//   - dns.png, from the newest run in dns-summary.csv: queries per second
//     of orch and dnsmasq, and the p99 latency of the probe at rest and
//     under each fixed load (in % of dnsmasq's maximum).
//   - overlay.png, from the newest run in overlay-summary.csv: TCP
//     throughput over the underlay and the overlay per GRO setting with
//     their ratio, and the round trip the overlay adds in each direction.
//   - membership.png, from membership-summary.csv (rewritten by every
//     run; it has no time or source column, so the footnote gives the
//     file's time): failure detection median and max against N for orch
//     lan, serf lan and orch fast; rows without a result are listed in the
//     footnote.
//
// Columns are found by their header name, so their order does not
// matter. A missing CSV, column or row skips that chart with a message on
// stderr; the others are still drawn, and the exit status is 0. Only a
// failure to write a PNG makes it 1. The paths written go to stdout.
package main
