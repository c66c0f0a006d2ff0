module nemutator.io/launcher

go 1.19
