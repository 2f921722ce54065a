"""pyetcd: an etcd v2-API compatible key-value store (see ARCHITECTURE in the README)."""

__version__ = "0.1.0"
# What /version reports: the etcd release whose v2 API we mirror.
ETCD_SERVER_VERSION = "3.4.23"
ETCD_CLUSTER_VERSION = "3.4.0"
