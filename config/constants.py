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
# The prober's counts (cluster/statics, the 集群规模 column): nodeCount ... daemonsetCount, countedAt, countError.
COUNT_ITEM_KEYS = ("nodeCount", "podCount", "namespaceCount", "deploymentCount", "daemonsetCount",
                   "countedAt", "countError")  # fmt: skip
ITEM_KEYS = (*ANNOTATION_KEYS, "clusterVersion", "clusterStatus", *HEALTH_KEYS, *COUNT_ITEM_KEYS, "duplicateOf")
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

# Platform routes (contract-platform.md §1.4, §1.7, §2.2).
MSG_BIND = "请求出错"
MSG_MISSING_CLUSTER = "缺少参数: clusterId"
MSG_UNKNOWN_CLUSTER = "集群不存在"
MSG_CLUSTER_UNREACHABLE = "无法连接集群"
MSG_CLUSTER_TIMEOUT = "请求集群超时"
MSG_ITEM_NOT_OBJECT = "item必须是对象"
MSG_DETAIL_OK = "查询详情成功"
MSG_QUERY_FAILED = "查询失败"
MSG_CREATE_OK = "创建成功"
MSG_CREATE_FAILED = "创建失败"
MSG_MODIFY_OK = "修改成功"
MSG_RESOURCE_UPDATE_FAILED = "更新失败"
MSG_RESOURCE_DELETE_FAILED = "删除失败"
MSG_RESTART_OK = "重启成功"
MSG_RESTART_NOT_FOUND = "未找到资源"
MSG_RESTART_FAILED = "重启失败"
MSG_NOT_RUN_TIMEOUT = "未执行(超时)"
MSG_NS_LIST_OK = "查询ns列表成功"
MSG_NS_GET_OK = "查询ns详情成功"
RESTART_ANNOTATION = "kubeeasy.com/restart"  # sic: the Go version's key, read by its users' tooling

# Composite routes (contract-platform.md §2.5, §2.6, §2.8, §2.9, §2.10).
MSG_YAML_BAD_METHOD = "不支持的method"
MSG_YAML_TOO_LARGE = "yaml数据过大"
MSG_YAML_TOO_MANY = "yaml文档过多"
MSG_YAML_EMPTY = "yaml数据为空"
MSG_FEATURE_OFF = "功能已关闭"
MSG_TOPOLOGY_FAILED = "获取拓图失败"  # sic: Go's text
MSG_COPY_OK = "复制成功"
MSG_COPY_DONE_FAILED = "复制完成, 失败"
MSG_COPY_FAILED = "复制失败"
MSG_COPY_SKIPPED_SA_TOKEN = "跳过: 服务账号令牌由目标集群自己生成"
MSG_NOT_COUNTED = "未能统计"
MSG_STATICS_FAILED = "获取集群统计信息失败"
MSG_AUTO_SERVICE_FAILED = "自动创建Service失败"
AUTO_SERVICE_ANNOTATION = "kubeasy.com/autoCreateService"  # sic: Go's key
FIELD_MANAGER = "krm-backend"  # server-side apply of tools/yaml
# Counts the prober records with each cluster's health (annotations of the cluster Secret).
COUNT_KINDS = ("node", "pod", "namespace", "deployment", "daemonset")
COUNT_KEYS = tuple(f"{kind}Count" for kind in COUNT_KINDS)
COUNT_META_KEYS = ("countedAt", "countError")
# WebSocket routes (contract-platform.md §3).
MSG_WS_REQUIRED = "需要WebSocket连接"
MSG_FEATURE_DISABLED = MSG_FEATURE_OFF  # §5 #21, one text for every switched-off route
MSG_WS_TOO_MANY = "会话数已达上限, 请稍后再试"
MSG_POD_NOT_FOUND = "Pod不存在"
MSG_POD_QUERY_FAILED = "查询Pod失败"
MSG_CONTAINER_NOT_FOUND = "容器不存在"
MSG_POD_NOT_RUNNING = "Pod未运行"
MSG_LOG_FAILED = "获取日志失败"
MSG_EXEC_FAILED = "执行命令失败"
MSG_LOG_ENDED = "日志流已结束"
MSG_LOG_MAX = "日志跟踪时长已达上限"
MSG_EXEC_EXITED = "进程已退出"
MSG_SESSION_IDLE = "会话空闲超时, 已断开"
MSG_SESSION_MAX = "会话时长已达上限, 已断开"
MSG_SERVER_STOPPING = "服务正在停止, 会话已结束"
MSG_UPSTREAM_CLOSED = "与集群的连接已断开"
