module github.com/forkserver/forkserver

go 1.24
