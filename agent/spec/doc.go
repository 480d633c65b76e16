// Package spec is the service spec: the contract between users, who write
// it in YAML or JSON or build it with `orch service create` flags, the API
// that carries it, the replicated store that keeps it, and the agent that
// places and runs it.
//
// A [Service] is a group of one or more containers that run together as
// one replica and share one network namespace, run [Service.Replicas]
// times across the cluster:
//
//	name: sentry
//	replicas: 2
//	containers:
//	  - name: web
//	    image: registry.example/sentry:9
//	    args: ["run", "web"]
//	    env:
//	      - name: SENTRY_REDIS_HOST
//	        value: "127.0.0.1"
//	    ports:
//	      - name: http
//	        containerPort: 9000
//	  - name: redis
//	    image: redis:3.2-alpine
//	    ports:
//	      - name: redis
//	        containerPort: 6379
//
// The package imports no other orch package, only the standard library and
// sigs.k8s.io/yaml (whose one home it is), so the API, the CLI, the store
// and the agent can all share it.
//
// # Contract
//
//   - [Decode] is the only way bytes from users become a Service. It
//     accepts YAML or JSON up to [MaxSpecSize] bytes, rejects unknown and
//     repeated fields, values of the wrong kind and more than one YAML
//     document, and returns the spec normalized and valid, or a
//     *[SpecError] that lists every problem by its path
//     ("containers[1].ports[0].containerPort: must be 1-65535 (got 0)").
//   - [Service.Normalize] writes every default into the spec (replicas 1,
//     protocol tcp, restart always after 5s, update one at a time,
//     stop-first, pause on failure, Docker's health check timings), so a
//     stored or inspected spec is explicit. It is idempotent and never
//     changes a value that is set.
//   - [Service.Validate] reports every problem, accepting unset fields
//     that Normalize would fill.
//   - [Service.Marshal] is the canonical encoding: compact JSON of the
//     normalized spec. Specs that mean the same encode to the same bytes,
//     which is what [Equal] compares, and the bytes decode to an equal
//     spec. Store these bytes.
//   - [BuildFromFlags] and [ApplyUpdate] turn Docker-style CLI flags into
//     a spec, validated, with problems named by flag.
//
// All errors for bad input are *SpecError, so a caller can answer them
// with HTTP 400 (errors.As) and show them to the user as they are: one
// problem per line.
//
// # Concurrency
//
// The package has no state. A Service is plain data and not safe for
// concurrent mutation: hand other goroutines a [Service.Clone].
package spec
