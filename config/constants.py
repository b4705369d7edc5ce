"""Wire constants of the Go krm-backend: messages, label and annotation keys, defaults."""

# Label that marks a Secret as a cluster record (Go: kubeasy.com/cluster.metadata=true).
DEFAULT_CLUSTER_LABEL = "kubeasy.com/cluster.metadata"
KUBECONFIG_KEY = "kubeconfig"  # data key of the kubeconfig inside a cluster Secret

# Annotation keys written by Go's Struct2Map(ClusterStatus); the order is the struct's.
ANNOTATION_KEYS = ("id", "displayName", "city", "district", "version", "status")
STATUS_ACTIVE = "Active"
STATUS_INACTIVE = "InActive"
# Annotations this port adds (ClusterHealth); the frontend ignores them, richer clients read them.
HEALTH_KEYS = ("reason", "message", "lastProbeTime", "lastTransitionTime", "probeLatencyMs",
               "clusterUID", "credentialExpiry")  # fmt: skip
# Every key of a list item, in order: Go's six, the two mirrors some frontends read, health, duplicates.
ITEM_KEYS = (*ANNOTATION_KEYS, "clusterVersion", "clusterStatus", *HEALTH_KEYS, "duplicateOf")
REASON_HEALTHY = "Healthy"
REASON_CREDENTIALS_EXPIRED = "CredentialsExpired"
# Reachable and authenticated, but the credentials may not read kube-system: up, identity unknown.
REASON_IDENTITY_UNKNOWN = "IdentityUnknown"

# Messages (section 2 and 3 of the contract).
MSG_QUERY_OK = "查询成功"
MSG_LOGIN_OK = "登录成功"
MSG_LOGOUT_OK = "退出成功"
MSG_ADD_OK = "添加成功"
MSG_UPDATE_OK = "更新成功"
MSG_DELETE_OK = "删除成功"
MSG_BAD_LOGIN = "用户名或密码错误"
MSG_NO_TOKEN = "请求未携带token,请登录后尝试"
MSG_BAD_TOKEN = "Token验证未通过"
MSG_BIND_ADD = "添加集群的配置信息不完整"
MSG_BIND_UPDATE = "更新集群的配置信息不完整"
MSG_CLUSTER_INFO = "无法获取集群信息"
MSG_ADD_FAILED = "添加集群失败"
MSG_UPDATE_FAILED = "更新集群失败"
MSG_DELETE_FAILED = "集群删除失败"
MSG_GET_FAILED = "获取集群详情失败"
MSG_LIST_FAILED = "查询失败"
MSG_NOT_FOUND = "接口不存在"
MSG_METHOD_NOT_ALLOWED = "请求方法不允许"
MSG_NOT_READY = "服务尚未就绪: 元数据集群不可用"
MSG_METADATA_UNAVAILABLE = "元数据集群不可用"
MSG_INTERNAL = "服务内部错误"
MSG_TOO_LARGE = "请求体过大"
MSG_LOGOUT_FAILED = "退出失败"
MSG_LOGIN_LOCKED = "登录失败次数过多,请稍后再试"
MSG_BAD_BODY = "请求体格式错误"
