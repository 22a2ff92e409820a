// Command etcd is upstream etcd v3.6, built from the Go module proxy for the lab's etcd image.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
