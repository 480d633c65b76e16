package deps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/orchproject/orch/internal/testenv"
)

// module is the module path; the test checks it against go.mod.
const module = "github.com/orchproject/orch"

// leaves are the packages of STYLE.md section 1 that know nothing of each
// other or of the agent. Each names a directory tree at the module root.
var leaves = []string{"gossip", "netplane", "dnsdisc", "healthcheck"}

// owners maps each third-party library (an import path tree) to the one orch
// package tree allowed to import it.
var owners = []struct{ lib, owner string }{
	{"github.com/hashicorp/serf", "gossip"},
	{"github.com/hashicorp/memberlist", "gossip"},
	{"github.com/vishvananda/netlink", "netplane"},
	{"sigs.k8s.io/yaml", "agent/spec"},
	{"github.com/miekg/dns", "dnsdisc"},
	{"github.com/containerd", "agent/runtime"},
}

// under reports whether import path p is tree or below it.
func under(p, tree string) bool {
	return p == tree || strings.HasPrefix(p, tree+"/")
}

// orch returns the import path of the orch package at module-relative rel.
func orch(rel string) string { return module + "/" + rel }

// inOrch reports whether p is under the orch tree rel.
func inOrch(p, rel string) bool { return under(p, orch(rel)) }

// leafOf returns the leaf whose tree holds p, or "".
func leafOf(p string) string {
	for _, l := range leaves {
		if inOrch(p, l) {
			return l
		}
	}
	return ""
}

// short strips the module path, for messages.
func short(p string) string {
	if r, ok := strings.CutPrefix(p, module+"/"); ok {
		return r
	}
	return p
}

// rule forbids some imports of some orch packages.
type rule struct {
	// name states the rule for failure messages.
	name string
	// applies reports whether the rule constrains the package p.
	applies func(p string) bool
	// forbidden reports whether p must not import imp.
	forbidden func(p, imp string) bool
	// direct restricts the rule to p's own imports. Otherwise it covers
	// everything p reaches through orch packages, so a detour through
	// internal/... does not hide a forbidden edge.
	direct bool
}

// rules is the table of STYLE.md section 1.
func rules() []rule {
	rs := []rule{
		{
			name:    "STYLE.md §1: gossip, netplane, dnsdisc and healthcheck never import each other, agent/... or cmd/...",
			applies: func(p string) bool { return leafOf(p) != "" },
			forbidden: func(p, imp string) bool {
				l := leafOf(imp)
				return l != "" && l != leafOf(p) || inOrch(imp, "agent") || inOrch(imp, "cmd")
			},
		},
		{
			name:    "STYLE.md §1: agent/runtime never imports the leaves or agent",
			applies: func(p string) bool { return inOrch(p, "agent/runtime") },
			forbidden: func(_, imp string) bool {
				return leafOf(imp) != "" || imp == orch("agent")
			},
		},
		{
			name:    "STYLE.md §1: agent/api imports no orch package but internal/... (agent satisfies its Backend interface)",
			applies: func(p string) bool { return inOrch(p, "agent/api") },
			forbidden: func(_, imp string) bool {
				return under(imp, module) && !inOrch(imp, "internal") && !inOrch(imp, "agent/api")
			},
		},
		{
			name:    "STYLE.md §1: agent (like everything outside cmd/) never imports cmd/...",
			applies: func(p string) bool { return !inOrch(p, "cmd") },
			forbidden: func(_, imp string) bool {
				return inOrch(imp, "cmd")
			},
		},
	}
	for _, o := range owners {
		rs = append(rs, rule{
			name:    fmt.Sprintf("STYLE.md §1: each third-party library has one home: only %s imports %s/...", o.owner, o.lib),
			applies: func(p string) bool { return !inOrch(p, o.owner) },
			forbidden: func(_, imp string) bool {
				return under(imp, o.lib)
			},
			direct: true,
		})
	}
	return rs
}

// graph maps each orch package to its direct imports (orch, standard
// library and third-party). Packages outside the module are not keys.
type graph map[string][]string

// violation is one forbidden import.
type violation struct {
	rule     string
	from, to string
	via      []string // packages between from and to; empty for a direct import
}

func (v violation) String() string {
	edge := short(v.from) + " imports " + short(v.to)
	if len(v.via) > 0 {
		path := []string{short(v.from)}
		for _, p := range v.via {
			path = append(path, short(p))
		}
		path = append(path, short(v.to))
		edge += " (through " + strings.Join(path, " -> ") + ")"
	}
	return edge + ", breaking the rule: " + v.rule
}

// edge is the violation's from -> to, for comparing in tests.
func (v violation) edge() string { return short(v.from) + " -> " + short(v.to) }

// check applies rules to every package of g, sorted by package, and returns
// the violations. For indirect rules the reported path is a shortest one.
func check(g graph, rules []rule) []violation {
	var out []violation
	for _, p := range slices.Sorted(mapKeys(g)) {
		direct := g[p]
		reach, parent := reachable(g, p)
		for _, r := range rules {
			if !r.applies(p) {
				continue
			}
			imps := reach
			if r.direct {
				imps = direct
			}
			for _, imp := range imps {
				if !r.forbidden(p, imp) {
					continue
				}
				v := violation{rule: r.name, from: p, to: imp}
				for q := parent[imp]; q != p; q = parent[q] {
					v.via = append(v.via, q)
				}
				slices.Reverse(v.via)
				out = append(out, v)
			}
		}
	}
	return out
}

// reachable returns every import path p reaches through orch packages, in
// breadth-first order, and the BFS tree (parent[x] imports x).
func reachable(g graph, p string) ([]string, map[string]string) {
	parent := map[string]string{p: ""}
	var order []string
	queue := []string{p}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		for _, imp := range g[q] {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = q
			order = append(order, imp)
			if _, ok := g[imp]; ok {
				queue = append(queue, imp)
			}
		}
	}
	return order, parent
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkCmdFiles applies the cmd/orch row of the table file by file: imports
// maps a file name in cmd/orch to its import paths.
func checkCmdFiles(imports map[string][]string) []violation {
	const (
		onlyAgentGo = "STYLE.md §1: in cmd/orch only agent.go imports agent; every other verb is a client of agent/api"
		noLeaves    = "STYLE.md §1: cmd/orch never imports the leaves (gossip, netplane, dnsdisc, healthcheck) directly"
		allowList   = "STYLE.md §1: cmd/orch imports of orch only agent/api, agent/spec (the service spec users write), internal/... and, in agent.go, agent"
	)
	var out []violation
	for _, file := range slices.Sorted(mapKeys(imports)) {
		from := "cmd/orch/" + file
		for _, imp := range imports[file] {
			var r string
			switch {
			case !under(imp, module), inOrch(imp, "agent/api"), inOrch(imp, "agent/spec"), inOrch(imp, "internal"):
				continue
			case imp == orch("agent"):
				if file == "agent.go" {
					continue
				}
				r = onlyAgentGo
			case leafOf(imp) != "":
				r = noLeaves
			default:
				r = allowList
			}
			out = append(out, violation{rule: r, from: from, to: imp})
		}
	}
	return out
}

// TestImportRules checks the real import graph against the rules.
func TestImportRules(t *testing.T) {
	g := loadGraph(t)
	// The rules only forbid, so an empty or misread graph would pass:
	// make sure the packages they are about were seen.
	for _, p := range []string{"agent", "agent/api", "gossip", "cmd/orch"} {
		if _, ok := g[orch(p)]; !ok {
			t.Fatalf("go list did not report %s; the graph is incomplete (%d packages)", orch(p), len(g))
		}
	}
	for _, p := range append(slices.Clone(leaves), "agent/runtime") {
		if _, ok := g[orch(p)]; !ok {
			t.Logf("%s does not exist yet; its rules apply once it does", p)
		}
	}
	for _, v := range check(g, rules()) {
		t.Error(v)
	}
}

// TestCmdOrchImports checks, file by file, what cmd/orch imports.
func TestCmdOrchImports(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "cmd", "orch")
	imports := fileImports(t, dir)
	if _, ok := imports["agent.go"]; !ok {
		t.Fatalf("no agent.go in %s (files: %v)", dir, slices.Sorted(mapKeys(imports)))
	}
	if !slices.Contains(imports["agent.go"], orch("agent")) {
		t.Fatalf("cmd/orch/agent.go does not import agent; is the parse wrong? imports: %v", imports["agent.go"])
	}
	for _, v := range checkCmdFiles(imports) {
		t.Error(v)
	}
}

// loadGraph lists the module's packages and their dependencies with
// go list -deps, from the repository root.
func loadGraph(t *testing.T) graph {
	t.Helper()
	testenv.RequireCommand(t, "go")
	root := testenv.RepoRoot(t)
	if got := modulePath(t, root); got != module {
		t.Fatalf("go.mod declares module %q, the rules are written for %q", got, module)
	}
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-json=ImportPath,Imports,Standard", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./... in %s: %v\n%s", root, err, stderr.Bytes())
	}
	g, err := parseGoList(out)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// parseGoList reads the stream of JSON objects go list -json prints and
// keeps the module's packages.
func parseGoList(b []byte) (graph, error) {
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
		}
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return g, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		if !p.Standard && under(p.ImportPath, module) {
			g[p.ImportPath] = p.Imports
		}
	}
}

// modulePath reads the module line of root/go.mod.
func modulePath(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	t.Fatalf("no module line in %s/go.mod", root)
	return ""
}

// fileImports parses the imports of every non-test .go file in dir,
// whatever its build constraints.
func fileImports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	out := map[string][]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		var imps []string
		for _, is := range f.Imports {
			p, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", fset.Position(is.Pos()), is.Path.Value, err)
			}
			imps = append(imps, p)
		}
		out[filepath.Base(name)] = imps
	}
	return out
}

// fakeGraph builds a graph from module-relative names. Names whose first
// element has a dot are third-party and names in std are standard library;
// neither becomes a key.
func fakeGraph(edges map[string][]string) graph {
	std := []string{"context", "fmt", "net"}
	full := func(p string) string {
		first, _, _ := strings.Cut(p, "/")
		if strings.Contains(first, ".") || slices.Contains(std, p) {
			return p
		}
		return orch(p)
	}
	g := graph{}
	for from, tos := range edges {
		imps := []string{}
		for _, to := range tos {
			imps = append(imps, full(to))
		}
		g[full(from)] = imps
	}
	return g
}

// TestCheck_CleanGraph runs the rules over the layout STYLE.md describes,
// future packages included: none of its edges may be reported.
func TestCheck_CleanGraph(t *testing.T) {
	g := fakeGraph(map[string][]string{
		"gossip":              {"github.com/hashicorp/serf/serf", "github.com/hashicorp/memberlist", "internal/atomicfile", "fmt"},
		"gossip/store":        {"gossip", "internal/atomicfile"},
		"netplane":            {"github.com/vishvananda/netlink", "github.com/vishvananda/netlink/nl", "net"},
		"dnsdisc":             {"github.com/miekg/dns", "net"},
		"healthcheck":         {"context", "net"},
		"internal/atomicfile": {"fmt"},
		"agent/runtime":       {"github.com/containerd/containerd/v2/client", "github.com/containerd/errdefs", "internal/atomicfile"},
		"agent/api":           {"context", "internal/atomicfile"},
		"agent/api/apitest":   {"agent/api"},
		"agent/events":        {"fmt"},
		"agent":               {"agent/api", "agent/events", "agent/runtime", "gossip", "netplane", "dnsdisc", "healthcheck", "golang.org/x/sync/errgroup"},
		"cmd/orch":            {"agent", "agent/api", "github.com/spf13/cobra"},
	})
	for _, v := range check(g, rules()) {
		t.Errorf("allowed edge reported: %v", v)
	}
}

// TestCheck_FakeGraph proves every rule can fail: a graph with one or more
// forbidden edges per rule must report exactly those.
func TestCheck_FakeGraph(t *testing.T) {
	g := fakeGraph(map[string][]string{
		"gossip":              {"github.com/hashicorp/serf/serf", "netplane"},
		"netplane":            {"github.com/vishvananda/netlink", "cmd/orchctl"},
		"healthcheck":         {"internal/probe"},
		"internal/probe":      {"dnsdisc"},
		"dnsdisc":             {"github.com/miekg/dns", "agent/events"},
		"agent/runtime":       {"github.com/containerd/containerd/v2/client", "agent", "gossip"},
		"agent/api":           {"agent/events", "internal/atomicfile"},
		"agent/events":        {"github.com/hashicorp/serf/serf"},
		"internal/atomicfile": {"fmt"},
		"agent":               {"agent/api", "cmd/orchctl"},
		"cmd/orchctl":         {},
		"cmd/orch":            {"agent", "github.com/miekg/dns", "github.com/containerd/containerd/v2/client"},
	})
	var got []string
	for _, v := range check(g, rules()) {
		got = append(got, v.edge())
	}
	// Edges that break two rules are reported once per rule. Not reported:
	// dnsdisc and agent/api reach serf through agent/events, but the
	// library rules are about direct imports; internal/probe reaches
	// agent/events, and no rule covers internal/... but the cmd one.
	want := []string{
		"agent -> cmd/orchctl",                                   // agent never imports cmd/...
		"agent/api -> agent/events",                              // agent/api: only internal/...
		"agent/events -> github.com/hashicorp/serf/serf",         // serf's home is gossip
		"agent/runtime -> agent",                                 // no agent
		"agent/runtime -> gossip",                                // no leaves
		"agent/runtime -> netplane",                              // ... not even through gossip
		"agent/runtime -> cmd/orchctl",                           // cmd rule, through agent
		"cmd/orch -> github.com/miekg/dns",                       // dns's home is dnsdisc
		"cmd/orch -> github.com/containerd/containerd/v2/client", // containerd's home is agent/runtime
		"dnsdisc -> agent/events",                                // leaves: no agent/...
		"gossip -> netplane",                                     // leaves: not each other
		"gossip -> cmd/orchctl", "gossip -> cmd/orchctl",         // leaf and cmd rules, through netplane
		"healthcheck -> dnsdisc",                             // through internal/probe
		"healthcheck -> agent/events",                        // through internal/probe and dnsdisc
		"netplane -> cmd/orchctl", "netplane -> cmd/orchctl", // leaf and cmd rules
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n got %q\nwant %q", got, want)
	}

	// The message names the edge, the path and the rule.
	for _, v := range check(g, rules()) {
		if v.edge() != "healthcheck -> dnsdisc" {
			continue
		}
		want := "healthcheck imports dnsdisc (through healthcheck -> internal/probe -> dnsdisc), breaking the rule: STYLE.md §1: gossip, netplane, dnsdisc and healthcheck never import each other"
		if !strings.HasPrefix(v.String(), want) {
			t.Errorf("message:\n got %s\nwant %s...", v, want)
		}
	}
}

// TestCheckCmdFiles proves the per-file cmd/orch rules can fail.
func TestCheckCmdFiles(t *testing.T) {
	imports := map[string][]string{
		"agent.go":   {"fmt", orch("agent"), "github.com/spf13/cobra"},
		"members.go": {orch("agent/api"), orch("internal/atomicfile")},
		"service.go": {orch("agent"), orch("agent/api")},
		"dns.go":     {orch("dnsdisc")},
		"events.go":  {orch("agent/events")},
	}
	var got []string
	for _, v := range checkCmdFiles(imports) {
		got = append(got, v.from+" -> "+short(v.to)+": "+v.rule)
	}
	want := []string{
		"cmd/orch/dns.go -> dnsdisc: STYLE.md §1: cmd/orch never imports the leaves (gossip, netplane, dnsdisc, healthcheck) directly",
		"cmd/orch/events.go -> agent/events: STYLE.md §1: cmd/orch imports of orch only agent/api, agent/spec (the service spec users write), internal/... and, in agent.go, agent",
		"cmd/orch/service.go -> agent: STYLE.md §1: in cmd/orch only agent.go imports agent; every other verb is a client of agent/api",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n got %q\nwant %q", got, want)
	}
}
