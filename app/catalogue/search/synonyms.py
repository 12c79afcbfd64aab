"""Synonyms: colloquial words <-> official terms, from data/synonyms.txt merged with a built-in table."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

from .text import DATA_DIR, normalize

SYNONYMS_PATH = DATA_DIR / "synonyms.txt"
SYNONYM_WEIGHT = 0.9
REVERSE_SYNONYM_WEIGHT = 0.8

logger = logging.getLogger(__name__)

# the built-in table keeps search working when the data files are missing
_BUILTIN_SYNONYMS = """
社会保障卡: 社保卡, 医保卡, 电子社保卡
医疗保险: 医保, 医疗保障, 看病保险
医疗保障: 医保
养老保险: 养老, 养老金
社会保险: 社保
居民身份证: 身份证, 二代证, 二代身份证
临时居民身份证: 临时身份证
户口: 户口本, 户口簿, 户籍, 落户, 迁户口, 户口迁移
户籍: 户口本, 户口簿, 户口
居民户口簿: 户口本, 户口簿
机动车驾驶证: 驾照, 驾驶证, 驾驶执照, 驾驶本, 驾证
期满换证: 到期, 过期, 期满
换领: 过期, 到期, 换证, 换新, 期满
补领: 丢, 丢了, 丢失, 遗失, 掉了, 补办, 不见了, 弄丢
补证: 丢, 丢失, 遗失, 补办, 掉了
挂失: 丢, 丢了, 丢失, 遗失, 掉了, 不见了
出生登记: 生孩子, 生小孩, 上户口, 新生儿落户, 新生儿, 生娃, 宝宝落户, 报户口
出生医学证明: 出生证, 出生证明, 生孩子, 生小孩, 新生儿, 生娃
企业设立登记: 开公司, 开个公司, 注册公司, 成立公司, 办公司, 公司注册, 开办企业, 营业执照
个体工商户设立登记: 开店, 开个店, 个体户, 开网店, 开小店
企业简易注销登记: 注销公司, 公司注销, 关公司
企业变更登记: 公司变更, 变更法人, 变更地址
普通护照: 护照, 出国, 办护照
往来港澳通行证: 港澳通行证, 去香港, 去澳门, 港澳签注, 通行证
无犯罪记录证明: 无犯罪证明, 无犯罪, 良民证, 无犯罪记录
最低生活保障: 低保, 吃低保
住房公积金: 公积金
提取: 取公积金, 取出, 提公积金
租房提取: 租房, 付房租
购房提取: 买房, 购房
住房公积金个人住房贷款: 公积金贷款, 房贷, 公积金贷
缴存证明: 缴存记录, 缴费证明
结婚登记: 结婚, 领证, 登记结婚, 领结婚证
义务教育入学: 上学, 入学, 小学报名, 上小学, 初中报名, 上初中
交通违法处理: 违章, 罚单, 交通罚款, 违章处理, 违章罚款, 交罚款
机动车检验合格标志: 年检, 年审, 车检, 检验标志
个人所得税: 个税, 退税
综合所得汇算清缴: 汇算, 退税, 个税汇算
失业保险金: 失业金, 失业补助, 失业了
高龄津贴: 老年补贴, 高龄补贴, 老人补贴
残疾人两项补贴: 残疾补贴, 残疾人补贴, 护理补贴
退役军人优待证: 优待证, 退伍, 退役
居住证: 暂住证
公章刻制: 刻章, 刻公章, 公章
新办纳税人: 领发票, 税务登记, 新办企业
食品经营许可: 食品许可证, 开饭店, 开餐馆, 餐饮许可
门诊慢特病: 慢性病, 慢病, 特殊病, 慢特病
医疗费用手工报销: 报销, 医药费报销, 看病报销, 医疗费报销
医保异地就医备案: 异地就医, 异地医保, 外地看病, 异地备案
个人参保证明: 社保证明, 参保证明, 社保缴费证明, 社保记录
养老保险待遇资格认证: 生存认证, 养老金认证, 资格认证, 刷脸认证
不动产登记: 房产证, 房本, 不动产证
职业技能等级证书: 技能证书, 职业资格, 技能等级
山东惠才卡: 人才卡, 惠才卡
就业登记: 找工作, 就业
生育保险: 生育津贴, 产假津贴
生育登记: 生二胎, 生三胎, 二胎, 三胎, 怀孕, 准生证, 生育服务证
"""


class SynonymTable:
    """Two-way mapping between official (canonical) terms and colloquial aliases."""

    def __init__(self, pairs: Iterable[tuple[str, Iterable[str]]] = ()) -> None:
        self.to_canonical: dict[str, set[str]] = {}
        self.to_aliases: dict[str, set[str]] = {}
        for canonical, aliases in pairs:
            self.add(canonical, aliases)

    def add(self, canonical: str, aliases: Iterable[str]) -> None:
        canonical = normalize(canonical).replace(" ", "")
        if not canonical:
            return
        for alias in aliases:
            alias = normalize(alias).replace(" ", "")
            if alias and alias != canonical:
                self.to_canonical.setdefault(alias, set()).add(canonical)
                self.to_aliases.setdefault(canonical, set()).add(alias)

    def words(self) -> set[str]:
        return set(self.to_canonical) | set(self.to_aliases)

    def containing(self, word: str, limit: int = 3) -> list[str]:
        """The shortest colloquial phrases (aliases) that contain `word`."""
        found = sorted((alias for alias in self.to_canonical if word in alias and alias != word),
                       key=lambda alias: (len(alias), alias))
        return found[:limit]

    def expansions(self, word: str) -> list[tuple[str, float]]:
        found = [(c, SYNONYM_WEIGHT) for c in sorted(self.to_canonical.get(word, ()))]
        found += [(a, REVERSE_SYNONYM_WEIGHT) for a in sorted(self.to_aliases.get(word, ()))]
        return found


def parse_synonyms(text: str) -> list[tuple[str, list[str]]]:
    """Parse lines of the form `canonical: alias1, alias2` (also full-width colon/commas)."""
    pairs = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = line.replace("：", ":").replace("，", ",").replace("、", ",")
        if ":" not in line:
            continue
        canonical, _, rest = line.partition(":")
        aliases = [a.strip() for a in re.split(r"[,;|/]", rest) if a.strip()]
        if canonical.strip() and aliases:
            pairs.append((canonical.strip(), aliases))
    return pairs


def load_synonyms(path: Path | None = SYNONYMS_PATH, *, include_builtin: bool = True) -> SynonymTable:
    """Load the catalogue synonym file (if present) merged with the built-in situational table."""
    pairs = parse_synonyms(_BUILTIN_SYNONYMS) if include_builtin else []
    if path is not None and Path(path).is_file():
        try:
            pairs += parse_synonyms(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            logger.warning("could not read %s", path, exc_info=True)
    return SynonymTable(pairs)
