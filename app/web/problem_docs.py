"""What each problem `type` of the API means and what the caller should do (served at /problems)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemDoc:
    slug: str
    status: int
    title: str
    cause: str
    action: str


PROBLEM_DOCS: tuple[ProblemDoc, ...] = (
    ProblemDoc("bad-request", 400, "请求格式错误",
               "请求体不是合法的 JSON，或参数形式不对（例如核验时提交的既不是亮证码也不是 SD-JWT）。",
               "按接口文档修正请求后重试；重试同样的请求不会成功。"),
    ProblemDoc("unauthorized", 401, "未登录或凭证无效",
               "缺少 Authorization: Bearer 访问令牌，或令牌已过期、被撤销、签名不对。",
               "用刷新令牌（grant_type=refresh_token）换新的访问令牌，或重新登录。"),
    ProblemDoc("invalid-signature", 401, "开放接口签名无效",
               "开放接口请求的 X-Client-Id、X-Timestamp、X-Nonce、X-Signature 缺失或不对：签名不符、时间偏差超过5分钟或随机数重复使用。",
               "按 README 的“Open API signing”重新计算签名，每次请求使用新的随机数，并校准服务器时钟。"),
    ProblemDoc("forbidden", 403, "无权执行此操作",
               "已登录，但当前角色、授权范围或代办权限不允许这个操作。",
               "换用有权限的账号（如大厅管理员），或请企业法定代表人授予相应的代办范围。"),
    ProblemDoc("real-name-level-required", 403, "实名等级不足",
               "该业务要求更高的实名等级（L2 户籍信息核验，或 L3 人脸识别核验）；问题详情的 required_level 和 real_name_level 给出所需和当前等级。",
               "L2：用与户籍登记一致的姓名和身份证号码实名注册；L3：通过 POST /api/v1/me/face-verifications 完成人脸核验后重试。"),
    ProblemDoc("not-found", 404, "资源不存在",
               "地址不存在，或对象不存在——也包括属于他人的对象：平台从不透露他人数据是否存在。",
               "检查地址和编号；确认使用的是对象所有者本人的令牌。"),
    ProblemDoc("method-not-allowed", 405, "不支持该请求方法",
               "该地址不支持这个 HTTP 方法；响应的 Allow 头列出支持的方法。",
               "改用 Allow 头中的方法。"),
    ProblemDoc("conflict", 409, "请求与当前状态冲突",
               "与现有数据冲突（如身份证号码已注册、手机号已被占用），或办件状态不允许这个流转。",
               "先读取对象的最新状态，再决定下一步。"),
    ProblemDoc("precondition-failed", 412, "对象已被修改",
               "If-Match 中的版本（ETag）与当前版本不一致：别人先修改了这个事项。",
               "重新读取事项，取得新的 ETag，合并修改后再提交。"),
    ProblemDoc("payload-too-large", 413, "请求体过大",
               "请求体超过服务器允许的大小（MAX_CONTENT_LENGTH，默认256 KB）。",
               "缩小请求；上传材料请使用文件接口。"),
    ProblemDoc("unsupported-media-type", 415, "不支持的内容类型",
               "请求体不是 application/json（或接口要求的其他类型）。",
               "设置 Content-Type: application/json 并发送 JSON。"),
    ProblemDoc("validation-failed", 422, "请求参数校验失败",
               "字段缺失、格式不对或取值不允许；errors 成员按字段名列出原因（如 id_number、sms_code），"
               "多余的字段同样会被拒绝。",
               "按 errors 中的说明逐项修正后重试。"),
    ProblemDoc("locked", 423, "账户已锁定",
               "15分钟内密码错误达5次，账户暂时锁定（正确的密码在锁定期内同样被拒绝）。",
               "等待 Retry-After 头给出的秒数，或用短信验证码重置密码。"),
    ProblemDoc("too-many-requests", 429, "请求过于频繁",
               "超过了按客户端地址、手机号或客户端计算的频率限制。",
               "等待 Retry-After 头给出的秒数后再试，不要立即重试。"),
    ProblemDoc("internal-error", 500, "服务器内部错误",
               "服务器出现未预料的错误；没有写入一半的数据。",
               "稍后重试；持续出现时请把响应中的 instance（请求编号）提供给运维人员。"),
    ProblemDoc("bad-gateway", 502, "上游服务异常",
               "微信、支付宝等上游服务返回了错误或无法识别的应答。",
               "稍后重试；登录码等一次性凭证需要在小程序中重新获取。"),
    ProblemDoc("service-unavailable", 503, "服务暂不可用",
               "依赖的服务（数据库、共享存储、上游平台）暂时不可用，或该功能尚未开通（如小程序未配置）。",
               "等待 Retry-After 头给出的秒数后重试；“未开通”类错误请联系运维人员按 detail 的提示配置。"),
    ProblemDoc("error", 0, "其他错误",
               "上面没有单独说明的 HTTP 错误；status 成员给出状态码，detail 说明原因。",
               "按 detail 的说明处理。"),
)

BY_SLUG = {doc.slug: doc for doc in PROBLEM_DOCS}
