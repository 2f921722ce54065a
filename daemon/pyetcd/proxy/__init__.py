"""etcd's v2 proxy mode: a process that serves the client API by forwarding to a cluster's members.

Pure parts live here (which endpoints, how requests and answers are rewritten); the sockets are in
runtime/upstream.py and runtime/proxying.py, the kept cluster list in storage/proxy_cluster.py.
"""
