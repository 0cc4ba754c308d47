module github.com/vigil-init/vigil

go 1.26.0

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/mattn/go-isatty v0.0.24
	github.com/robfig/cron/v3 v3.0.1
	golang.org/x/sys v0.50.0
)

require go.uber.org/goleak v1.3.0
