module kiln/gotemplate-ref

go 1.19
