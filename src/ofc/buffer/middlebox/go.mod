module violin.dev/middlebox

go 1.22
