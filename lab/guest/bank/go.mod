module kubevirt-violin/lab/guest/bank

go 1.26
