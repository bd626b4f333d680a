// Command etcd is etcd's server, built from its Go module (its own go.mod has replace directives, so `go install` fails).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
