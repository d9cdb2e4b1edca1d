module jetson-fleet/images/web-probe

go 1.22
